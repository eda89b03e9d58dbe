"""The toy model of superposition (Elhage et al. 2022), model kind `"tms"`: x' = ReLU(Wᵀ W x + b).

**Weight layout.** `W` is `[d_hidden, n_features]`, as the paper's W ∈ R^{m×n}: column `W[:, i]` is feature i's
direction in the bottleneck (what the geometry in `toymi.analysis.tms` reads), `W @ x` embeds and `W.T @ h`
reads back. `b` is `[n_features]`. The hidden-identity variant has `W_hidden` `[d_hidden, d_hidden]` between them.

**Initialisation.** `W` ~ N(0, init_scale² · 2 / (n_features + d_hidden)) (Xavier normal, as Elhage et al.'s
`nn.init.xavier_normal_`), `b` = 0, `W_hidden` = identity. The variant draws `W` from the same key as the plain
model, so the two start as the same function.

One example per call, like the transformer's one sequence: vmap for batches, or pass `[batch, feature]` to `run`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model.activations import SiteActivations
from toymi.model.hooked import HookedModel
from toymi.model.hooks import Hooks
from toymi.model.interventions import AnyIntervention
from toymi.model.registry import register_model_kind
from toymi.model.sites import Site, register_site_table
from toymi.model.tms_config import TMS_SITES, TMSConfig

_Opt = Float[Array, "..."] | None


class TMSActivations(SiteActivations):
    """What `TMS.run` captured, one optional field per site (None unless captured); look up by name."""

    SITE_TABLE: ClassVar[dict[str, Site]] = TMS_SITES

    input: _Opt = None  # [feature]
    hidden: _Opt = None  # [d_hidden]
    hidden_identity_out: _Opt = None  # [d_hidden]
    output_pre: _Opt = None  # [feature]
    output: _Opt = None  # [feature]


class TMS(HookedModel):
    """A toy model of superposition over one feature vector (vmap, or pass `[batch, feature]`, for batches).

    **Arguments:**

    - `config`: a `TMSConfig`.
    - `key`: a `jax.random` key for initialisation.

    `model(x)` gives the reconstruction `[feature]`; `model.run(x, capture=..., interventions=...)` gives
    `(reconstruction, TMSActivations)`.
    """

    config: TMSConfig = eqx.field(static=True)
    W: Float[Array, "d_hidden feature"]
    b: Float[Array, " feature"]
    W_hidden_trained: Float[Array, "d_hidden d_hidden"] | None  # only when the hidden identity is trainable

    def __init__(self, config: TMSConfig, key: PRNGKeyArray):
        self.config = config
        std = config.init_scale * math.sqrt(2.0 / (config.n_features + config.d_hidden))
        self.W = std * jax.random.normal(key, (config.d_hidden, config.n_features))
        self.b = jnp.zeros(config.n_features)
        self.W_hidden_trained = jnp.eye(config.d_hidden) if config.hidden_identity_trainable else None

    @property
    def W_hidden(self) -> Float[Array, "d_hidden d_hidden"]:
        """The hidden layer of the variant: learned, or exactly the identity when fixed."""
        if not self.config.hidden_identity:
            raise AttributeError("this model has no hidden identity layer (hidden_identity = false)")
        if self.W_hidden_trained is not None:
            return self.W_hidden_trained
        return jnp.eye(self.config.d_hidden)

    def forward(
        self, x: Float[Array, " feature"], capture: frozenset[str] = frozenset(),
        interventions: Sequence[AnyIntervention] = (),
    ) -> tuple[Float[Array, " feature"], TMSActivations]:
        """`run` for one example without input checks."""
        hooks = Hooks(capture, interventions, self.sites)
        x = hooks("input", None, x)
        h = hooks("hidden", None, self.W @ x)
        if self.config.hidden_identity:
            h = hooks("hidden_identity_out", None, self.W_hidden @ h)
        pre = hooks("output_pre", None, self.W.T @ h + self.b)
        out = hooks("output", None, jax.nn.relu(pre))
        return out, TMSActivations(**hooks.collected())

    def check_inputs(self, x) -> Array:
        """Reject inputs of the wrong rank, width or dtype (shapes are static, so this holds under jit too)."""
        x = jnp.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.config.n_features:
            raise ValueError(f"x must be [feature] or [batch, feature] with {self.config.n_features} features, "
                             f"got shape {x.shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"x must be floating point, got dtype {x.dtype}")
        return x


register_model_kind("tms", TMSConfig, TMS)
register_site_table("tms", TMS_SITES)
