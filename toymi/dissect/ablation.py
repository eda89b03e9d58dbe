"""Ablation sweeps: knock out each head, or each layer's attention or MLP output, and measure the metric.

Three ways to remove a component (Nanda's and Chan et al.'s terms):

- `"zero"`: set it to 0. Simple, but 0 may be far from anything the model has seen.
- `"mean"`: its mean over a reference batch, per position. Removes what varies between inputs, keeps the constant.
- `"resample"`: its value on another input of the reference batch, drawn at random per example. Keeps the
  activation on-distribution; the draw is explicit (`key`) so results are reproducible.

A sweep is one compiled call, one `jax.vmap` per layer over the components (see `toymi.dissect.patching`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.jit import jit
from toymi.dissect.grid import Metric, check_grid, check_model, check_tokens, grid_from_values
from toymi.model.transformer import Transformer

METHODS = ("zero", "mean", "resample")


@jit
def _ablation(model, tokens, metric, site, over, method, reference, key):
    if method == "zero":
        return grid_from_values(model, tokens, metric, site, over, "zero", jnp.zeros(()), False)
    itself = reference is None
    ref = model.run(tokens if itself else reference, capture=[site])[1][site]  # [ref, layer, *site]
    if method == "mean":
        return grid_from_values(model, tokens, metric, site, over, "mean", ref.mean(0), False)
    n = tokens.shape[0]
    if itself:  # resampling from the batch itself: never an example's own value
        draw = (jnp.arange(n) + jax.random.randint(key, (n,), 1, n)) % n
    else:
        draw = jax.random.randint(key, (n,), 0, ref.shape[0])
    return grid_from_values(model, tokens, metric, site, over, "resample", ref[draw], True)


def ablation_sweep(
    model: Transformer, tokens: Int[Array, "batch pos"], metric: Metric, site: str = "z",
    over: Sequence[str] = ("layer", "head"), method: str = "zero",
    reference: Int[Array, "ref pos"] | None = None, key: PRNGKeyArray | None = None,
) -> Float[Array, "layer *cells"]:
    """The metric with each cell of `site` ablated, every cell in one compiled call.

    **Arguments:**

    - `model`, `metric`: as for `toymi.dissect.patching.patching_grid`.
    - `tokens`: `[batch, pos]` (a single `[pos]` sequence only for `"zero"`).
    - `site`, `over`: what is ablated: `("z", ("layer", "head"))` every head, `("attn_out", ("layer",))` every
      attention layer, `("mlp_post", ("layer", "neuron"))` every neuron; any grid of `patching_grid`.
    - `method`: `"zero"`, `"mean"` or `"resample"`.
    - `reference`: tokens the mean or the resampled values come from (default: `tokens`, resampling another example).
    - `key`: the resampling draw (required for `"resample"`).

    **Returns:** `[layer, ...]` metric values in the order of `over`.
    """
    check_model(model)
    over = check_grid(model, site, over)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    (tokens,) = check_tokens(model, tokens)
    if method != "zero":
        if tokens.ndim != 2:
            raise ValueError(f"{method} ablation needs a batch of tokens [batch, pos], got shape {tokens.shape}")
        if reference is not None:
            reference = model.check_inputs(reference)
            if reference.ndim != 2 or reference.shape[1] != tokens.shape[1]:
                raise ValueError(f"reference tokens must be [ref, {tokens.shape[1]}] (one value per position), "
                                 f"got shape {reference.shape}")
        if method == "resample":
            if key is None:
                raise ValueError("resample ablation draws the resampled inputs: pass key=jax.random.PRNGKey(...)")
            if reference is None and tokens.shape[0] < 2:
                raise ValueError("resampling from the batch itself needs at least 2 examples")
    return _ablation(model, tokens, metric, site, over, method, reference, key)


def ablate_heads(model, tokens, metric, method: str = "zero", **kwargs) -> Float[Array, "layer head"]:
    """Every head ablated in turn (its output `z` at every position): `[layer, head]`."""
    return ablation_sweep(model, tokens, metric, "z", ("layer", "head"), method, **kwargs)


def ablate_layers(model, tokens, metric, method: str = "zero", **kwargs) -> dict[str, Float[Array, " layer"]]:
    """Every layer's attention output and MLP output ablated in turn, those the model has: `{site: [layer]}`."""
    sites = tuple(site for site in ("attn_out", "mlp_out") if site in model.sites)
    return {site: ablation_sweep(model, tokens, metric, site, ("layer",), method, **kwargs) for site in sites}
