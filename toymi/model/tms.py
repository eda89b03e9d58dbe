"""The toy model of superposition (Elhage et al. 2022), model kind `"tms"`: x' = ReLU(Wᵀ W x + b) — its config,
its named sites, the model and its registration.

Axes of its sites (one example; batches, seeds and sweeps are leading axes added by vmap): `feature` (input /
output feature, `n_features` of them) and `d_hidden` (the bottleneck, `d_hidden` wide).

**Weight layout.** `W` is `[d_hidden, n_features]`, as the paper's W ∈ R^{m×n}: column `W[:, i]` is feature i's
direction in the bottleneck (what the geometry in `toymi.analysis.tms` reads), `W @ x` embeds and `W.T @ h`
reads back. `b` is `[n_features]`. The hidden-identity variant has `W_hidden` `[d_hidden, d_hidden]` between them.

**Initialisation.** `W` ~ N(0, init_scale² · 2 / (n_features + d_hidden)) (Xavier normal, as Elhage et al.'s
`nn.init.xavier_normal_`), `b` = 0, `W_hidden` = identity. The variant draws `W` from the same key as the plain
model, so the two start as the same function.

One example per call, like the transformer's one sequence: vmap for batches, or pass `[batch, feature]` to `run`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model.activations import Activations
from toymi.model.hooked import HookedModel, refuse_positions
from toymi.model.hooks import Hooks
from toymi.model.interventions import AnyIntervention
from toymi.model.registry import register_model_kind
from toymi.model.sites import Site
from toymi.validate import Config, boolean, integer, positive_number, setting

_SITES = (
    Site("input", ("feature",), False, description="the input features x"),
    Site("hidden", ("d_hidden",), False, description="the bottleneck W x"),
    Site("hidden_identity_out", ("d_hidden",), False,
         description="W_hidden (W x), only in the hidden-identity variant"),
    Site("output_pre", ("feature",), False, description="W^T h + b, before the ReLU"),
    Site("output", ("feature",), False, description="the reconstruction ReLU(W^T h + b)"),
)

TMS_SITES: dict[str, Site] = {s.name: s for s in _SITES}  # every site any TMS config can have


@dataclasses.dataclass(frozen=True)
class TMSConfig(Config):
    """Shape of a toy model of superposition, x' = ReLU(Wᵀ W x + b) (Elhage et al. 2022).

    **Arguments:**

    - `n_features`: input and output width (the task fills it in).
    - `d_hidden`: bottleneck width (Elhage et al.'s m).
    - `hidden_identity`: insert a `d_hidden × d_hidden` matrix `W_hidden`, initialised to the identity, between
      `W` and `Wᵀ` (the "TMS with hidden identity" of the APD and SPD papers): x' = ReLU(Wᵀ W_hidden W x + b).
    - `hidden_identity_trainable`: train `W_hidden` (from the identity). False (the default, as the SPD papers'
      "fixed identity") keeps it exactly the identity: it is then not a parameter at all, so neither gradients nor
      weight decay can move it, and `hidden_identity_out` is simply a second name for the bottleneck.
    - `init_scale`: multiplies the initial `W` (Xavier normal: N(0, 2 / (n_features + d_hidden))).
    """

    title = "TMSConfig"
    section = "tms model config"

    n_features: int = setting(check=integer(1))
    d_hidden: int = setting(check=integer(1))
    hidden_identity: bool = setting(False, boolean)
    hidden_identity_trainable: bool = setting(False, boolean)
    init_scale: float = setting(1.0, positive_number)

    def relations(self, valid: frozenset[str]) -> Iterable[str]:
        if self.hidden_identity_trainable is True and self.hidden_identity is False:
            yield "hidden_identity_trainable = true needs hidden_identity = true"

    def site_table(self) -> dict[str, Site]:
        """The sites this model has, in forward order (`hidden_identity_out` only with `hidden_identity`)."""
        return {name: s for name, s in TMS_SITES.items() if name != "hidden_identity_out" or self.hidden_identity}


class TMS(HookedModel):
    """A toy model of superposition over one feature vector (vmap, or pass `[batch, feature]`, for batches).

    **Arguments:**

    - `config`: a `TMSConfig`.
    - `key`: a `jax.random` key for initialisation.

    `model(x)` gives the reconstruction `[feature]`; `model.run(x, capture=..., interventions=...)` gives
    `(reconstruction, Activations)`.
    """

    kind: ClassVar[str] = "tms"
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
        interventions: Sequence[AnyIntervention] = (), output_positions: None = None,
    ) -> tuple[Float[Array, " feature"], Activations]:
        """`run` for one example without input checks."""
        refuse_positions(self, output_positions)
        hooks = Hooks(capture, interventions, self.sites)
        x = hooks("input", None, x)
        h = hooks("hidden", None, self.W @ x)
        if self.config.hidden_identity:
            h = hooks("hidden_identity_out", None, self.W_hidden @ h)
        pre = hooks("output_pre", None, self.W.T @ h + self.b)
        out = hooks("output", None, jax.nn.relu(pre))
        return out, Activations(hooks.collected(), self.sites)

    def check_inputs(self, x) -> Array:
        """Reject inputs of the wrong rank, width or dtype (shapes are static, so this holds under jit too)."""
        x = jnp.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.config.n_features:
            raise ValueError(f"x must be [feature] or [batch, feature] with {self.config.n_features} features, "
                             f"got shape {x.shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"x must be floating point, got dtype {x.dtype}")
        return x


register_model_kind("tms", TMSConfig, TMS, TMS_SITES)
