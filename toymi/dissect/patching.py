"""Activation patching and path patching: which activations carry the difference between two inputs.

Convention (noising): the model runs on `clean` tokens and one piece of an activation is replaced by its value on
`corrupted` tokens; the grid holds the metric of each patched run. A cell equal to the clean metric means that piece
does not matter; a cell at the corrupted metric means it carries the whole difference. TransformerLens's
`get_act_patch_*` run the corrupted input and patch clean values (denoising): swap the two arguments for that.

Every grid is one compiled call. Inside it, the layers are unrolled (a toy model has few) and each layer's cells are
one `jax.vmap` over `Intervention`s built from traced indices (`patch(site, value, layer=, positions=, heads=)`).
Unrolling the layer makes it static, which buys the main speed-up: before the patch, the run is the clean run, so the
cell replaces the stream entering the patched layer (and the site itself) with the clean run's cached values, and
XLA drops every computation upstream as dead code. The result is the same as recomputing from the input
(`reuse_clean=False`, one vmap over every cell with a traced layer, the reference implementation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.jit import jit
from toymi.model.interventions import Intervention, apply_function, mean_ablate, patch, resample_ablate, zero_ablate
from toymi.model.sites import check_site
from toymi.model.transformer import Transformer

Metric = Callable[[Array], Array]  # logits [batch, pos, d_vocab_out] (or [pos, d_vocab_out]) -> scalar

# The per-layer sites a grid may patch, and the clean values that, replaced at the patched layer, make every
# computation before the patch dead code: the stream entering the sub-layer, and the site itself. (The
# normalisers' scales are recorded but do not flow downstream, so patching them would do nothing.)
_ENTRY = {
    "resid_pre": ("resid_pre",), "resid_mid": ("resid_mid",), "resid_post": ("resid_post",),
    **{s: ("resid_pre", s) for s in ("q", "k", "v", "attn_scores", "pattern", "z", "result", "attn_out")},
    **{s: ("resid_mid", s) for s in ("mlp_pre", "mlp_post", "mlp_out")},
}
PATCHABLE_SITES = tuple(_ENTRY)

# The grids: axes after `layer`, each swept in full. `neuron` is the site's last axis (d_mlp), every position.
GRIDS = (("layer",), ("layer", "pos"), ("layer", "head"), ("layer", "head", "pos"), ("layer", "neuron"))

BUILDERS = {"patch": patch, "mean": mean_ablate, "resample": resample_ablate,
            "zero": lambda site, value, **where: zero_ablate(site, **where)}


# ---- checks --------------------------------------------------------------------------------------------------------

def check_model(model) -> None:
    if not isinstance(model, Transformer):
        raise TypeError(f"causal grids need a toymi Transformer, got {type(model).__name__}")


def check_tokens(model: Transformer, *token_sets) -> tuple[Array, ...]:
    """Each set checked by the model (rank, dtype, range); all must share one shape."""
    checked = tuple(model.check_inputs(t) for t in token_sets)
    shapes = {t.shape for t in checked}
    if len(shapes) > 1:
        raise ValueError(f"token sets must have one shape, got {sorted(shapes)}: pad or crop them to match")
    return checked


def check_grid(model: Transformer, site: str, over: Sequence[str]) -> tuple[str, ...]:
    """`over` as a tuple, after checking that `site` exists in the model and has the swept axes."""
    over = tuple(over)
    axes = check_site(site, model.config).axes
    if site not in _ENTRY:
        raise ValueError(f"site {site!r} cannot be patched in a grid; use one of: {', '.join(PATCHABLE_SITES)}")
    if over not in GRIDS:
        raise ValueError(f"over={over!r} is not a grid; use one of: {', '.join(map(repr, GRIDS))}")
    needs = {"head": ("head",), "pos": ("pos", "query_pos"), "neuron": ("d_mlp",)}
    for axis in over[1:]:
        if not set(needs[axis]) & set(axes):
            raise ValueError(f"site {site!r} (axes {axes}) has no {axis!r} axis to sweep over")
    return over


def grid_sizes(model: Transformer, tokens: Array, over: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    c = model.config
    size = {"layer": c.n_layers, "head": c.n_heads, "pos": tokens.shape[-1], "neuron": c.d_mlp}
    return tuple((axis, size[axis]) for axis in over)


def _scalar(metric: Metric, logits: Array) -> Array:
    value = metric(logits)
    if jnp.shape(value) != ():
        raise ValueError(f"the metric must return a scalar, got shape {jnp.shape(value)} from logits of shape "
                         f"{logits.shape} (reduce over the batch inside the metric)")
    return value


# ---- the engine: one vmap per layer over a grid of interventions ---------------------------------------------------

def intervention_grid(
    model: Transformer, tokens: Int[Array, "*batch pos"], metric: Metric, site: str,
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
        return _scalar(metric, logits)

    if not reuse_clean:
        n_cells = int(np.prod(shape, dtype=int))
        layers = jnp.repeat(jnp.arange(n_layers), n_cells)  # layer-major, like the reshape below
        tiled = [jnp.tile(i, n_layers) for i in index]

        def cell(layer, *idx):
            return metric_under(lambda p: [make(layer, dict(zip(names, idx)), p)], (payload,))

        return jax.vmap(cell)(layers, *tiled).reshape((n_layers, *shape))

    entry = _ENTRY.get(site, ())
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
    model: Transformer, tokens: Array, metric: Metric, site: str, over: tuple[str, ...], builder: str,
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


# ---- activation patching ---------------------------------------------------------------------------------------------

@jit
def _patching(model, clean, corrupted, metric, site, over, reuse_clean):
    source = model.run(corrupted, capture=[site])[1][site]  # [*batch, layer, *site]
    return grid_from_values(model, clean, metric, site, over, "patch", source, True, reuse_clean)


DIRECTIONS = ("denoising", "noising")


def patching_grid(
    model: Transformer, clean: Int[Array, "*batch pos"], corrupted: Int[Array, "*batch pos"], metric: Metric,
    site: str = "resid_pre", over: Sequence[str] = ("layer", "pos"), reuse_clean: bool = True, *, direction: str,
) -> Float[Array, "layer *cells"]:
    """Activation patching, one compiled call for the whole grid, in the `direction` you name.

    - `direction="denoising"` (TransformerLens's `get_act_patch_*`): run the **corrupted** input and patch each cell
      of `site` in from the **clean** run; a cell matters if it restores the clean metric.
    - `direction="noising"`: run the **clean** input and patch each cell in from the **corrupted** run; a cell matters
      if it destroys the clean metric.

    **Arguments:**

    - `model`: a `Transformer`.
    - `clean`, `corrupted`: tokens of one shape, `[pos]` or `[batch, pos]` (example `b` patched from example `b`).
    - `direction`: `"denoising"` or `"noising"` (required: the two are easy to read backwards).
    - `metric`: logits (`[batch, pos, d_vocab_out]`, or `[pos, d_vocab_out]`) -> scalar, e.g.
      `toymi.dissect.metrics.LogitDiff`. Pass the same object again to reuse the compiled grid.
    - `site`: one of `PATCHABLE_SITES`: the residual stream (`resid_pre`, `resid_mid`, `resid_post`), a block's
      output (`attn_out`, `mlp_out`), heads (`z`, `result`, `q`, `k`, `v`, `pattern`, `attn_scores`) or neurons
      (`mlp_pre`, `mlp_post`).
    - `over`: the grid, one of `GRIDS`: `("layer", "pos")`, `("layer", "head")` (every position of the head),
      `("layer", "head", "pos")`, `("layer", "neuron")` (every position of the neuron), `("layer",)` (the whole site).
    - `reuse_clean`: start each patched run from the clean run's cached activations at the patched layer (faster,
      same numbers up to float rounding).

    **Returns:** the metric per cell, `[layer, ...]` in the order of `over`: a head grid is `[layer, head]` or
    `[layer, head, pos]` (TransformerLens's `get_act_patch_attn_head_out_by_pos` is `[layer, pos, head]`: swap the
    last two axes to compare).
    """
    check_model(model)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'denoising' (run corrupted, patch in clean values; TransformerLens's "
                         f"get_act_patch_*) or 'noising' (run clean, patch in corrupted values), got {direction!r}")
    clean, corrupted = check_tokens(model, clean, corrupted)
    over = check_grid(model, site, over)
    run_on, values_from = (corrupted, clean) if direction == "denoising" else (clean, corrupted)
    return _patching(model, run_on, values_from, metric, site, over, reuse_clean)


def patch_residual(model, clean, corrupted, metric, site: str = "resid_pre", *,
                   direction: str) -> Float[Array, "layer pos"]:
    """Residual stream patching by layer and position (`site`: `resid_pre`, `resid_mid` or `resid_post`)."""
    if not site.startswith("resid_"):
        raise ValueError(f"patch_residual patches the residual stream (resid_pre/mid/post), not {site!r}")
    return patching_grid(model, clean, corrupted, metric, site, ("layer", "pos"), direction=direction)


def patch_heads(model, clean, corrupted, metric, site: str = "z", by_position: bool = False, *,
                direction: str) -> Float[Array, "layer head *pos"]:
    """Head patching, `[layer, head]` (every position) or `[layer, head, pos]`; `site` `z` (TransformerLens's
    attn_head_out) or `result`, or a head's `q`, `k`, `v`, `pattern`."""
    return patching_grid(model, clean, corrupted, metric, site,
                         ("layer", "head", "pos") if by_position else ("layer", "head"), direction=direction)


def patch_neurons(model, clean, corrupted, metric, site: str = "mlp_post", *,
                  direction: str) -> Float[Array, "layer neuron"]:
    """MLP neuron patching, `[layer, d_mlp]`: each neuron at every position."""
    return patching_grid(model, clean, corrupted, metric, site, ("layer", "neuron"), direction=direction)


@jit
def _metric_of(model, tokens, metric):
    return _scalar(metric, model.run(tokens)[0])


def run_metric(model: Transformer, tokens: Int[Array, "*batch pos"], metric: Metric) -> Float[Array, ""]:
    """The metric of an unpatched run (the clean and corrupted baselines of a grid)."""
    check_model(model)
    (tokens,) = check_tokens(model, tokens)
    return _metric_of(model, tokens, metric)


# ---- path patching -------------------------------------------------------------------------------------------------

@jit
def _path_patching(model, clean, corrupted, metric, receivers, receiver_input):
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    z_clean = model.run(clean, capture=["z"])[1]["z"]  # [*batch, layer, pos, head, d_head]
    z_corrupt = model.run(corrupted, capture=["z"])[1]["z"]
    by_layer: dict[int, list[int]] = {}
    for layer, head in receivers or ():
        by_layer.setdefault(layer, []).append(head)

    def sender_run(sender, tok, zc, zx):
        """Every head frozen to its clean output except the sender, which gets its corrupted one; MLPs recompute."""
        frozen = [patch("z", jnp.where(sender[layer][None, :, None], zx[layer], zc[layer]), layer=layer)
                  for layer in range(n_layers)]
        if receiver_input is None:
            return model.forward(tok, interventions=frozen)[0]
        _, acts = model.forward(tok, capture=frozenset({receiver_input}), interventions=frozen)
        # Only the receivers' inputs take the values of that run; everything else recomputes from the clean input.
        received = [patch(receiver_input, acts[receiver_input, layer], layer=layer, heads=jnp.asarray(heads))
                    for layer, heads in by_layer.items()]
        return model.forward(tok, interventions=received)[0]

    def cell(layer, head):
        sender = (jnp.arange(n_layers)[:, None] == layer) & (jnp.arange(n_heads)[None, :] == head)
        if clean.ndim == 2:
            logits = jax.vmap(lambda *ex: sender_run(sender, *ex))(clean, z_clean, z_corrupt)
        else:
            logits = sender_run(sender, clean, z_clean, z_corrupt)
        return _scalar(metric, logits)

    layers, heads = jnp.meshgrid(jnp.arange(n_layers), jnp.arange(n_heads), indexing="ij")
    return jax.vmap(cell)(layers.ravel(), heads.ravel()).reshape(n_layers, n_heads)


def path_patching(
    model: Transformer, clean: Int[Array, "*batch pos"], corrupted: Int[Array, "*batch pos"], metric: Metric,
    receivers: Sequence[tuple[int, int]] | None = None, receiver_input: str | None = None,
) -> Float[Array, "layer head"]:
    """Path patching (Wang et al. 2022, as in ARENA): the effect of each sender head along one path only.

    For each sender head: (1) run the clean input with every head's output `z` frozen to its clean value except the
    sender's, which takes its corrupted value (MLPs recompute, so the path may go through them); (2) read the
    receivers' `receiver_input` (`q`, `k` or `v`) in that run; (3) run the clean input again with only those receiver
    inputs patched, and take the metric. Without receivers the path ends at the logits: the metric of run (1).

    **Arguments:**

    - `model`, `clean`, `corrupted`, `metric`: as for `patching_grid`.
    - `receivers`: `(layer, head)` pairs, or None for the logits.
    - `receiver_input`: `"q"`, `"k"` or `"v"` (with receivers), else None.

    **Returns:** `[layer, head]` over senders: the metric with that sender's path patched. Senders at or after a
    receiver's layer cannot reach its input and give the clean metric.
    """
    check_model(model)
    clean, corrupted = check_tokens(model, clean, corrupted)
    c = model.config
    if (receivers is None) != (receiver_input is None):
        raise ValueError("give receivers and receiver_input together (or neither, for the path to the logits)")
    if receiver_input is not None and receiver_input not in ("q", "k", "v"):
        raise ValueError(f"receiver_input must be 'q', 'k' or 'v', got {receiver_input!r}")
    if receivers is not None:
        receivers = tuple((int(layer), int(head)) for layer, head in receivers)
        if not receivers:
            raise ValueError("receivers is empty: give (layer, head) pairs, or None for the logits")
        bad = [(layer, head) for layer, head in receivers
               if not (0 <= layer < c.n_layers and 0 <= head < c.n_heads)]
        if bad:
            raise ValueError(f"receivers {bad} out of range for {c.n_layers} layers x {c.n_heads} heads")
    return _path_patching(model, clean, corrupted, metric, receivers, receiver_input)
