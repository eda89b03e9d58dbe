"""The residual MLP (model kind `"residual_mlp"`): sparse features through a fixed random embedding, MLP layers
added to the residual stream, and a read-out — the model of APD/SPD's compressed-computation experiment. Its
config, its named sites, the model and its registration.

    r = x @ W_E                                   [d_model]   W_E [n_features, d_model], fixed, unit-norm rows
    r = r + ReLU(r @ W_in[l] (+ b_in[l])) @ W_out[l] (+ b_out[l])      for each layer l
    y = r @ W_U (+ b_U)                           [n_outputs]  W_U = W_Eᵀ (fixed) or learned

**The embedding is not a parameter.** `W_E` is a function of the config (`fixed_embedding(n_features, d_model,
embed_seed)`): the model holds no array for it, so the optimiser never sees it, AdamW's decoupled weight decay
cannot shrink it (a stored array behind `lax.stop_gradient` would still decay by `lr · weight_decay` per step),
and checkpoints do not store it — the spec's `embed_seed` rebuilds it exactly. It enters compiled code as a
constant (400 KB at the published 100 × 1000). The fixed unembedding is its transpose, as in Braun et al. 2025
(APD) and Bushnaq et al. 2025 (SPD): the residual passes each feature through as `x W_E W_Eᵀ = x + interference`.

Initialisation: `W_in`, `W_out` from N(0, (init_scale / sqrt(fan_in))²) (fan_in d_model and d_mlp), biases 0; a
learned `W_U` starts at `W_Eᵀ` when it has `n_features` outputs (else N(0, 1/d_model)), `b_U` at 0.

Axes of its sites (one example; batches are leading axes added by vmap): `feature` (an input feature, or an output
of a learned unembedding), `d_model` (residual width), `d_mlp` (neurons). There is no `pos` or `head` axis, so
position and head masks do not apply to these sites.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model import init
from toymi.model.activations import Activations
from toymi.model.hooked import HookedModel, refuse_positions
from toymi.model.hooks import Hooks
from toymi.model.interventions import AnyIntervention
from toymi.model.registry import register_model_kind
from toymi.model.sites import Site
from toymi.validate import Config, boolean, integer, one_of, optional, positive_number, setting

UNEMBEDS = ("fixed", "learned")
EMBEDDINGS = ("random", "orthogonal")

_SITES = (
    Site("embed", ("d_model",), False, description="x @ W_E: the features written into the residual stream"),
    Site("resid_pre", ("d_model",), True, description="residual stream entering the MLP layer"),
    Site("mlp_pre", ("d_mlp",), True, description="MLP pre-activation resid @ W_in (+ b_in)"),
    Site("mlp_post", ("d_mlp",), True, description="ReLU(mlp_pre): the neurons"),
    Site("mlp_out", ("d_model",), True, description="mlp_post @ W_out (+ b_out)"),
    Site("resid_post", ("d_model",), True, description="resid_pre + mlp_out"),
    Site("output", ("feature",), False, description="final residual @ W_U (+ b_U): the read-out"),
)

RESIDUAL_MLP_SITES: dict[str, Site] = {s.name: s for s in _SITES}


@functools.lru_cache(maxsize=8)
def _fixed_embedding_np(n_features: int, d_model: int, seed: int, kind: str = "random") -> np.ndarray:
    # NumPy's PCG64 stream rather than jax.random, so a saved run rebuilds the same W_E on any JAX backend.
    w = np.random.default_rng(seed).standard_normal((n_features, d_model))
    if kind == "orthogonal":  # the same draw's rows orthonormalised (QR in float64): W_E W_Eᵀ = I
        q, r = np.linalg.qr(w.T)
        w = (q * np.sign(np.diag(r))).T
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    w = w.astype(np.float32)
    w.setflags(write=False)  # shared by the cache
    return w


def fixed_embedding(n_features: int, d_model: int, seed: int, kind: str = "random"
                    ) -> Float[Array, "n_features d_model"]:
    """The fixed embedding: standard normal rows (NumPy `default_rng(seed)`), each scaled to unit norm; with
    `kind="orthogonal"` the rows are orthonormalised first (`W_E W_Eᵀ = I`; needs `n_features <= d_model`).

    **Arguments:**

    - `n_features`, `d_model`: its shape.
    - `seed`: the config's `embed_seed`.
    - `kind`: the config's `embedding`, `"random"` or `"orthogonal"`.

    **Returns:** `W_E` as a float32 array `[n_features, d_model]`.
    """
    if kind not in EMBEDDINGS or (kind == "orthogonal" and n_features > d_model):
        raise ValueError(f"embedding kind must be 'random' or 'orthogonal' (with n_features <= d_model), got "
                         f"{kind!r} for {n_features} features in d_model={d_model}")
    return jnp.asarray(_fixed_embedding_np(n_features, d_model, seed, kind))


@dataclasses.dataclass(frozen=True)
class ResidualMLPConfig(Config):
    """Shape of a residual MLP over sparse features (the APD/SPD "compressed computation" model).

    **Arguments:**

    - `n_features`: input features (rows of the fixed embedding `W_E`).
    - `d_model`: residual width.
    - `d_mlp`: neurons per MLP layer.
    - `n_layers`: MLP layers, each added to the residual stream.
    - `n_outputs`: outputs; defaults to `n_features`. A fixed unembedding reads features back, so it needs
      `n_outputs == n_features`.
    - `unembed`: `"fixed"` (`W_U = W_Eᵀ`, not trained, as in APD/SPD) or `"learned"` (a trained `W_U` started at
      `W_Eᵀ` when the shapes allow it, plus a trained bias `b_U`).
    - `in_bias`, `out_bias`: whether each MLP has `b_in` / `b_out` (APD/SPD's compressed computation has neither).
    - `embed_seed`: seed of the fixed embedding (see `toymi.model.residual_mlp.fixed_embedding`).
    - `embedding`: `"random"` (unit-norm Gaussian rows: `W_E W_Eᵀ = I + noise`, the noise that mixes labels, as in
      APD/SPD) or `"orthogonal"` (orthonormal rows, `W_E W_Eᵀ = I` exactly: the clean compressed computation of
      Bhagat et al. 2025; needs `n_features <= d_model`).
    - `init_scale`: multiplies every initial MLP weight matrix, drawn from N(0, (init_scale / sqrt(fan_in))²).
    """

    title = "residual_mlp config"
    section = "residual_mlp config"

    n_features: int = setting(check=integer(1))
    d_model: int = setting(1000, integer(1))
    d_mlp: int = setting(50, integer(1))
    n_layers: int = setting(1, integer(1))
    n_outputs: int | None = setting(None, optional(integer(1)))  # filled by `derive`
    unembed: Literal["fixed", "learned"] = setting("fixed", one_of(UNEMBEDS))
    in_bias: bool = setting(False, boolean)
    out_bias: bool = setting(False, boolean)
    embed_seed: int = setting(0, integer(0))
    init_scale: float = setting(1.0, positive_number)
    embedding: Literal["random", "orthogonal"] = setting("random", one_of(EMBEDDINGS))

    def derive(self) -> None:
        if self.n_outputs is None:
            object.__setattr__(self, "n_outputs", self.n_features)

    def relations(self, valid: frozenset[str]) -> Iterable[str]:
        if {"unembed", "n_outputs", "n_features"} <= valid and self.unembed == "fixed" \
                and self.n_outputs != self.n_features:
            yield (f"a fixed unembedding (W_E transposed) gives n_features={self.n_features} outputs, but "
                   f"n_outputs={self.n_outputs}; set unembed = \"learned\"")
        if {"embedding", "n_features", "d_model"} <= valid and self.embedding == "orthogonal" \
                and self.n_features > self.d_model:
            yield (f"an orthogonal embedding needs n_features <= d_model, got {self.n_features} features in "
                   f"d_model={self.d_model}")

    def site_table(self) -> dict[str, Site]:
        """Every site exists in every residual MLP (no optional parts change what is computed)."""
        return RESIDUAL_MLP_SITES


# A causal grid's sites, and what makes everything before the patch dead code (`HookedModel.grid_entry`).
_GRID_ENTRY = {"resid_pre": ("resid_pre",), "resid_post": ("resid_post",),
               **{s: ("resid_pre", s) for s in ("mlp_pre", "mlp_post", "mlp_out")}}


class ResidualMLP(HookedModel):
    """A residual MLP over one feature vector (vmap, or pass `[batch, n_features]`, for batches).

    **Arguments:**

    - `config`: a `ResidualMLPConfig`.
    - `key`: a `jax.random` key for initialisation.

    `model(x)` gives outputs `[n_outputs]`; `model.run(x, capture=..., interventions=...)` gives
    `(outputs, Activations)`. Weights are stacked over layers: `W_in` is `[layer, d_model, d_mlp]`.
    """

    kind: ClassVar[str] = "residual_mlp"
    config: ResidualMLPConfig = eqx.field(static=True)
    W_in: Float[Array, "layer d_model d_mlp"]
    W_out: Float[Array, "layer d_mlp d_model"]
    b_in: Float[Array, "layer d_mlp"] | None
    b_out: Float[Array, "layer d_model"] | None
    learned_W_U: Float[Array, "d_model n_outputs"] | None  # None: the fixed unembedding W_Eᵀ
    b_U: Float[Array, " n_outputs"] | None

    def __init__(self, config: ResidualMLPConfig, key: PRNGKeyArray):
        k_in, k_out, k_u = init.split(key, 3)
        c = config
        self.config = c
        # init.normal: the same numbers as `scale * jax.random.normal(...)`, without a compile per new shape
        self.W_in = init.normal(k_in, (c.n_layers, c.d_model, c.d_mlp), c.init_scale / math.sqrt(c.d_model))
        self.W_out = init.normal(k_out, (c.n_layers, c.d_mlp, c.d_model), c.init_scale / math.sqrt(c.d_mlp))
        self.b_in = jnp.zeros((c.n_layers, c.d_mlp)) if c.in_bias else None
        self.b_out = jnp.zeros((c.n_layers, c.d_model)) if c.out_bias else None
        if c.unembed == "learned":
            W_E = fixed_embedding(c.n_features, c.d_model, c.embed_seed, c.embedding)
            self.learned_W_U = (W_E.T if c.n_outputs == c.n_features
                                else jax.random.normal(k_u, (c.d_model, c.n_outputs)) / math.sqrt(c.d_model))
            self.b_U = jnp.zeros(c.n_outputs)
        else:
            self.learned_W_U, self.b_U = None, None

    @property
    def W_E(self) -> Float[Array, "n_features d_model"]:
        """The fixed embedding (rebuilt from the config; see the module docstring)."""
        c = self.config
        return fixed_embedding(c.n_features, c.d_model, c.embed_seed, c.embedding)

    @property
    def W_U(self) -> Float[Array, "d_model n_outputs"]:
        """The unembedding: `W_Eᵀ` when fixed, else the learned matrix."""
        return self.W_E.T if self.learned_W_U is None else self.learned_W_U

    def forward(
        self, x: Float[Array, " n_features"], capture: frozenset[str] = frozenset(),
        interventions: Sequence[AnyIntervention] = (), output_positions: None = None,
    ) -> tuple[Float[Array, " n_outputs"], Activations]:
        """`run` for one example without input checks (the training step's path)."""
        refuse_positions(self, output_positions)
        hooks = Hooks(capture, interventions, self.sites, self.config.n_layers)
        resid = hooks("embed", None, x @ self.W_E)
        for layer in range(self.config.n_layers):
            resid = hooks("resid_pre", layer, resid)
            pre = resid @ self.W_in[layer]
            if self.b_in is not None:
                pre = pre + self.b_in[layer]
            post = hooks("mlp_post", layer, jax.nn.relu(hooks("mlp_pre", layer, pre)))
            out = post @ self.W_out[layer]
            if self.b_out is not None:
                out = out + self.b_out[layer]
            resid = hooks("resid_post", layer, resid + hooks("mlp_out", layer, out))
        y = resid @ self.W_U
        if self.b_U is not None:
            y = y + self.b_U
        return hooks("output", None, y), Activations(hooks.collected(), self.sites)

    def mlp_input_site(self) -> str | None:
        return "resid_pre"

    def grid_entry(self, site: str) -> tuple[str, ...] | None:
        return _GRID_ENTRY.get(site)

    def check_inputs(self, x) -> Array:
        """Reject the wrong rank or width (JAX would broadcast or fail with a less helpful message)."""
        x = jnp.asarray(x)
        n = self.config.n_features
        if x.ndim not in (1, 2) or x.shape[-1] != n:
            raise ValueError(f"inputs must be [n_features] or [batch, n_features] with n_features={n}, "
                             f"got shape {x.shape}")
        if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == bool):
            raise TypeError(f"inputs must be real numbers, got dtype {x.dtype}")
        return x.astype(jnp.float32) if not jnp.issubdtype(x.dtype, jnp.floating) else x


register_model_kind("residual_mlp", ResidualMLPConfig, ResidualMLP, RESIDUAL_MLP_SITES)
