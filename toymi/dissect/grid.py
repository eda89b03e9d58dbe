"""The causal-grid engine shared by patching, ablation, steering and attribution grids: one compiled call per grid,
for any model kind that declares which sites a grid may patch (`HookedModel.grid_entry`: the transformer's residual
stream, attention and MLP sites; the residual MLP's stream and MLP sites; TMS has no layers to sweep, so none).

Inside the call the layers are unrolled (a toy model has few) and each layer's cells are one `jax.vmap` over
`Intervention`s built from traced indices (`patch(site, value, layer=, positions=, heads=)`). Unrolling the layer
makes it static, which buys the main speed-up: before the patch, the run is the clean run, so the cell replaces the
stream entering the patched layer (and the site itself) with the clean run's cached values (the kind's
`grid_entry(site)`), and XLA drops every computation upstream as dead code. The result is the same as recomputing
from the input (`reuse_clean=False`, one vmap over every cell with a traced layer, the reference implementation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.model.hooked import HookedModel
from toymi.model.interventions import Intervention, apply_function, mean_ablate, patch, resample_ablate, zero_ablate
from toymi.model.sites import check_site

Metric = Callable[[Array], Array]  # output [batch, pos, d_vocab_out] (or one example's) -> scalar

# The grids: axes after `layer`, each swept in full. `neuron` is the site's last axis (d_mlp), every position.
GRIDS = (("layer",), ("layer", "pos"), ("layer", "head"), ("layer", "head", "pos"), ("layer", "neuron"))

BUILDERS = {"patch": patch, "mean": mean_ablate, "resample": resample_ablate,
            "zero": lambda site, value, **where: zero_ablate(site, **where)}


# ---- checks --------------------------------------------------------------------------------------------------------

def patchable_sites(model: HookedModel) -> tuple[str, ...]:
    """The sites of `model` a grid may patch (those its kind declares a `grid_entry` for)."""
    return tuple(site for site in model.sites if model.grid_entry(site) is not None)


def check_model(model) -> None:
    """A toymi model with at least one site a grid may patch."""
    if not isinstance(model, HookedModel):
        raise TypeError(f"causal grids need a toymi model, got {type(model).__name__}")
    if not patchable_sites(model):
        raise ValueError(f"a {model.kind} model has no per-layer site a causal grid can patch")


def check_tokens(model: HookedModel, *token_sets) -> tuple[Array, ...]:
    """Each set of inputs checked by the model (rank, dtype, range); all must share one shape."""
    checked = tuple(model.check_inputs(t) for t in token_sets)
    shapes = {t.shape for t in checked}
    if len(shapes) > 1:
        raise ValueError(f"token sets must have one shape, got {sorted(shapes)}: pad or crop them to match")
    return checked


def check_grid(model: HookedModel, site: str, over: Sequence[str]) -> tuple[str, ...]:
    """`over` as a tuple, after checking that `site` exists in the model and has the swept axes."""
    over = tuple(over)
    axes = check_site(site, model.config).axes
    if model.grid_entry(site) is None:
        raise ValueError(f"site {site!r} cannot be patched in a grid of a {model.kind} model; use one of: "
                         f"{', '.join(patchable_sites(model))}")
    if over not in GRIDS:
        raise ValueError(f"over={over!r} is not a grid; use one of: {', '.join(map(repr, GRIDS))}")
    needs = {"head": ("head",), "pos": ("pos", "query_pos"), "neuron": ("d_mlp",)}
    for axis in over[1:]:
        if not set(needs[axis]) & set(axes):
            raise ValueError(f"site {site!r} (axes {axes}) has no {axis!r} axis to sweep over")
    return over


def grid_sizes(model: HookedModel, tokens: Array, over: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    c = model.config
    size = {"layer": lambda: c.n_layers, "head": lambda: c.n_heads, "pos": lambda: tokens.shape[-1],
            "neuron": lambda: c.d_mlp}  # lazily: a kind has only the sizes of its own axes
    return tuple((axis, size[axis]()) for axis in over)


def scalar_metric(metric: Metric, logits: Array) -> Array:
    """`metric(logits)`, which must be a scalar (a clear error for a metric that forgot to reduce the batch)."""
    value = metric(logits)
    if jnp.shape(value) != ():
        raise ValueError(f"the metric must return a scalar, got shape {jnp.shape(value)} from logits of shape "
                         f"{logits.shape} (reduce over the batch inside the metric)")
    return value


# ---- the engine: one vmap per layer over a grid of interventions ---------------------------------------------------

def intervention_grid(
    model: HookedModel, tokens: Int[Array, "*batch pos"], metric: Metric, site: str,
    sizes: tuple[tuple[str, int], ...], make: Callable[..., Intervention], payload=None, reuse_clean: bool = True,
) -> Float[Array, "layer *cells"]:
    """The metric of `model` on `tokens` under each cell's intervention: the engine of every causal grid.

    Call it inside `jit`. `sizes` is `(("layer", n_layers), (axis, size), ...)`; the cell at `(layer, i, ...)` runs
    `make(layer, {axis: i, ...}, payload_b)` for every example `b` of the batch, where `payload` is a pytree with a
    leading batch axis (per-example values such as corrupted activations) or None. `layer` is a Python int when
    `reuse_clean` (the layers are unrolled and upstream work is skipped), a traced int otherwise.

    **Returns:** `[layer, *sizes]` metric values.
    """
    batched = tokens.ndim == 2
    n_layers = sizes[0][1]
    rest = sizes[1:]
    shape = tuple(s for _, s in rest)
    index = [g.ravel() for g in jnp.meshgrid(*[jnp.arange(s) for _, s in rest], indexing="ij")]
    names = [n for n, _ in rest]

    def metric_under(interventions_for: Callable, per_example) -> Array:
        def one(tok, example):
            return model.forward(tok, interventions=interventions_for(*example))[0]
        logits = jax.vmap(one)(tokens, per_example) if batched else one(tokens, per_example)
        return scalar_metric(metric, logits)

    if not reuse_clean:
        n_cells = int(np.prod(shape, dtype=int))
        layers = jnp.repeat(jnp.arange(n_layers), n_cells)  # layer-major, like the reshape below
        tiled = [jnp.tile(i, n_layers) for i in index]

        def cell(layer, *idx):
            return metric_under(lambda p: [make(layer, dict(zip(names, idx)), p)], (payload,))

        return jax.vmap(cell)(layers, *tiled).reshape((n_layers, *shape))

    entry = model.grid_entry(site) or ()
    _, clean = model.run(tokens, capture=entry) if entry else (None, None)
    rows = []
    for layer in range(n_layers):
        # The clean run's values where the patched layer begins: replacing them makes earlier layers dead code.
        start = {name: clean[name, layer] for name in entry}

        def interventions_for(p, start_b, layer=layer, idx=()):
            frozen = [apply_function(name, (lambda v: lambda x: v)(start_b[name]), layer=layer) for name in entry]
            return frozen + [make(layer, dict(zip(names, idx)), p)]

        def cell(*idx, layer=layer, start=start):
            return metric_under(lambda p, s: interventions_for(p, s, layer, idx), (payload, start))

        rows.append(jax.vmap(cell)(*index).reshape(shape) if rest else cell())
    return jnp.stack(rows)


def cell_intervention(site: str, builder: str, source: Array, clean: Array | None, layer,
                      idx: dict[str, Array]) -> Intervention:
    """The intervention of one cell: `source` (the value to put in, `[layer, *site]` or broadcastable) at `layer` and
    the cell's head / position / neuron. A neuron has no mask of its own in an `Intervention`, so its cell puts in
    the clean value with that one neuron taken from `source` (exact: upstream of the patch the run is clean)."""
    value = source[layer] if jnp.ndim(source) else source
    if "neuron" in idx:
        chosen = jnp.arange(clean.shape[-1]) == idx["neuron"]
        return patch(site, jnp.where(chosen, value, clean[layer]), layer=layer)
    return BUILDERS[builder](site, value, layer=layer, positions=idx.get("pos"), heads=idx.get("head"))


def grid_from_values(
    model: HookedModel, tokens: Array, metric: Metric, site: str, over: tuple[str, ...], builder: str,
    source: Array, source_per_example: bool, reuse_clean: bool = True,
) -> Array:
    """A grid that puts `source` values into `site` cell by cell (inside jit): patching, ablation, resampling.

    `source` is `[*batch, layer, *site]` when `source_per_example`, else shared by every example (`[layer, *site]`
    or a scalar).
    """
    sizes = grid_sizes(model, tokens, over)
    clean = None
    if "neuron" in over:
        clean = model.run(tokens, capture=[site])[1][site]
    shared = None if source_per_example else source
    payload = {"source": source if source_per_example else None, "clean": clean}

    def make(layer, idx, p):
        src = p["source"] if source_per_example else shared
        return cell_intervention(site, builder, src, p["clean"], layer, idx)

    return intervention_grid(model, tokens, metric, site, sizes, make, payload, reuse_clean)
