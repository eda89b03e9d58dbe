"""Attribution patching (Nanda 2023; Syed et al. 2023): activation patching to first order, from one backward pass.

Patching a cell moves the activation `a` from its clean value to the corrupted one, so the metric changes by
`grad_a metric . (a_corrupted - a_clean)` plus second-order terms. The gradient at the clean run covers every cell of
every layer at once, so a whole grid costs two forward passes and one backward pass instead of one forward pass per
cell. It is exact where the metric is linear in the activation (the last attention layer's `z` in a model without
normalisation, read by a logit difference) and degrades where a patch moves the model far (attention patterns that
flip): `compare_attribution` measures by how much on a given grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from toymi.jit import jit
from toymi.dissect.grid import Metric, check_grid, check_model, check_tokens, scalar_metric
from toymi.dissect.patching import patching_grid
from toymi.model.interventions import steer
from toymi.model.sites import check_site
from toymi.model.transformer import Transformer


def _reduce(contrib: Array, axes: tuple[str, ...], over: tuple[str, ...]) -> Array:
    """Sum `contrib` (`[layer, *site]`) over every site axis that the grid does not sweep, in `over`'s order."""
    named = {"head": "head", "pos": ("pos", "query_pos"), "neuron": "d_mlp"}
    keep = []
    for axis in over[1:]:
        want = named[axis] if isinstance(named[axis], tuple) else (named[axis],)
        keep.append(1 + next(i for i, a in enumerate(axes) if a in want))
    drop = tuple(i for i in range(1, contrib.ndim) if i not in keep)
    summed = contrib.sum(drop)
    kept_sorted = sorted(keep)  # the positions the kept axes have after the sum, in site order
    return jnp.transpose(summed, (0, *[1 + kept_sorted.index(k) for k in keep]))


@jit
def _attribution(model, clean, corrupted, metric, site, over):
    n_layers = model.config.n_layers
    a_clean = model.run(clean, capture=[site])[1][site]  # [*batch, layer, *site]
    a_corrupt = model.run(corrupted, capture=[site])[1][site]

    def metric_with(deltas):  # deltas like a_clean: added to the site at every layer
        def one(tok, d):
            added = [steer(site, d[layer], layer=layer) for layer in range(n_layers)]
            return model.forward(tok, interventions=added)[0]
        logits = jax.vmap(one)(clean, deltas) if clean.ndim == 2 else one(clean, deltas)
        return scalar_metric(metric, logits)

    value, grad = jax.value_and_grad(metric_with)(jnp.zeros_like(a_clean))
    diff = a_corrupt - a_clean
    # Masked attention scores are -inf in both runs: no difference there (and no nan).
    contrib = jnp.where(a_corrupt == a_clean, 0.0, grad * diff)
    if clean.ndim == 2:
        contrib = contrib.sum(0)  # a patch moves every example at once
    axes = check_site(site, model.config).axes
    return value + _reduce(contrib, axes, over)


def attribution_grid(
    model: Transformer, clean: Int[Array, "*batch pos"], corrupted: Int[Array, "*batch pos"], metric: Metric,
    site: str = "resid_pre", over: Sequence[str] = ("layer", "pos"),
) -> Float[Array, "layer *cells"]:
    """The first-order estimate of `patching_grid` with the same arguments: clean metric + gradient x difference.

    **Returns:** `[layer, ...]` in the order of `over`, in the metric's units (so it compares cell by cell).
    """
    check_model(model)
    clean, corrupted = check_tokens(model, clean, corrupted)
    over = check_grid(model, site, over)
    return _attribution(model, clean, corrupted, metric, site, over)


class AttributionComparison(NamedTuple):
    patched: Array  # the real patching grid
    attributed: Array  # its first-order estimate
    correlation: Array  # Pearson correlation of the two grids' cells
    max_abs_diff: Array  # largest |attributed - patched| over the cells


def compare_attribution(model, clean, corrupted, metric, site: str = "resid_pre",
                        over: Sequence[str] = ("layer", "pos")) -> AttributionComparison:
    """Real activation patching and attribution patching on the same grid, and how far apart they are."""
    patched = patching_grid(model, clean, corrupted, metric, site, over, direction="noising")
    attributed = attribution_grid(model, clean, corrupted, metric, site, over)
    correlation = jnp.corrcoef(patched.ravel(), attributed.ravel())[0, 1]
    return AttributionComparison(patched, attributed, correlation, jnp.abs(attributed - patched).max())
