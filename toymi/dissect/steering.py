"""Steering vectors: the difference of a site's mean activation between two sets of inputs, added back scaled.

If the model represents a property linearly, the difference of means between inputs with and without it is that
direction (activation addition, Turner et al. 2023; contrastive activation addition, Rimsky et al. 2024). Adding
`scale * vector` at a layer then moves the output as the property would. The sweep over scale x layer shows where
the direction is read and whether its effect is linear in the scale; it is one compiled call, one `jax.vmap` over
scales per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from toymi.dissect.grid import Metric, check_model, check_tokens, intervention_grid
from toymi.model.interventions import steer
from toymi.model.sites import check_site
from toymi.model.transformer import Transformer

STEERABLE_SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


def _check_site(model: Transformer, site: str) -> None:
    check_site(site, model.config)
    if site not in STEERABLE_SITES:
        raise ValueError(f"steering vectors live in the residual stream; site must be one of {STEERABLE_SITES}, "
                         f"got {site!r}")


@eqx.filter_jit
def _means(model, tokens, site, position):
    acts = model.run(tokens, capture=[site])[1][site]  # [batch, layer, pos, d_model]
    at = acts.mean(2) if position is None else acts[:, :, position]
    return at.mean(0)


def steering_vector(
    model: Transformer, with_property: Int[Array, "a pos"], without_property: Int[Array, "b pos_b"],
    site: str = "resid_pre", position: int | None = -1,
) -> Float[Array, "layer d_model"]:
    """Mean of `site` over `with_property` minus its mean over `without_property`, at every layer.

    **Arguments:**

    - `with_property`, `without_property`: `[batch, pos]` token sets (their lengths may differ).
    - `site`: a residual-stream site (`STEERABLE_SITES`).
    - `position`: the position averaged (default the last, where a prediction is read), or None for the mean
      over every position.

    **Returns:** `[layer, d_model]`.
    """
    check_model(model)
    _check_site(model, site)
    sets = [model.check_inputs(t) for t in (with_property, without_property)]
    for name, t in zip(("with_property", "without_property"), sets):
        if t.ndim != 2:
            raise ValueError(f"{name} must be a batch [batch, pos] (a mean needs examples), got shape {t.shape}")
        if position is not None and not -t.shape[1] <= position < t.shape[1]:
            raise IndexError(f"position {position} out of range for {name} of length {t.shape[1]}")
    return _means(model, sets[0], site, position) - _means(model, sets[1], site, position)


@eqx.filter_jit
def _steering(model, tokens, metric, site, vectors, scales, positions):
    sizes = (("layer", model.config.n_layers), ("scale", scales.shape[0]))

    def make(layer, idx, _):
        return steer(site, vectors[layer], scales[idx["scale"]], layer=layer, positions=positions)

    return intervention_grid(model, tokens, metric, site, sizes, make).T


def steering_sweep(
    model: Transformer, tokens: Int[Array, "*batch pos"], metric: Metric, vectors: Float[ArrayLike, "layer d_model"],
    scales: Float[ArrayLike, " scale"], site: str = "resid_pre", positions: Sequence[int] | ArrayLike | None = None,
) -> Float[Array, "scale layer"]:
    """The metric with `scale * vectors[layer]` added to `site` at `layer`, for every scale and layer.

    **Arguments:**

    - `tokens`, `metric`: as for `toymi.dissect.patching.patching_grid`.
    - `vectors`: `[layer, d_model]`, e.g. from `steering_vector`.
    - `scales`: `[scale]` multipliers (include 0 for the unsteered baseline).
    - `site`: where to add (`STEERABLE_SITES`).
    - `positions`: where in the sequence to add (indices or a boolean mask); None adds at every position.

    **Returns:** `[scale, layer]` metric values.
    """
    check_model(model)
    _check_site(model, site)
    (tokens,) = check_tokens(model, tokens)
    c = model.config
    vectors = jnp.asarray(vectors, jnp.float32)
    scales = jnp.atleast_1d(jnp.asarray(scales, jnp.float32))
    if vectors.shape != (c.n_layers, c.d_model):
        raise ValueError(f"vectors must be [layer, d_model] = {(c.n_layers, c.d_model)}, got {vectors.shape}")
    if scales.ndim != 1:
        raise ValueError(f"scales must be 1-D, got shape {scales.shape}")
    if positions is not None:
        positions = jnp.atleast_1d(jnp.asarray(positions))
    return _steering(model, tokens, metric, site, vectors, scales, positions)
