"""Activation patching and path patching: which activations carry the difference between two inputs.

Convention (noising): the model runs on `clean` tokens and one piece of an activation is replaced by its value on
`corrupted` tokens; the grid holds the metric of each patched run. A cell equal to the clean metric means that piece
does not matter; a cell at the corrupted metric means it carries the whole difference. TransformerLens's
`get_act_patch_*` run the corrupted input and patch clean values (denoising): swap the two arguments for that.

Every grid is one compiled call of the engine in `toymi.dissect.grid`, for any model kind that declares which sites a
grid may patch (the transformer, the residual MLP). Path patching follows heads, so it needs a transformer.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from toymi.dissect.grid import (
    GRIDS, Metric, check_grid, check_model, check_tokens, grid_from_values, patchable_sites, scalar_metric,
)
from toymi.jit import jit
from toymi.model.hooked import HookedModel
from toymi.model.interventions import patch

__all__ = ["DIRECTIONS", "GRIDS", "Metric", "patch_heads", "patch_neurons", "patch_residual", "patchable_sites",
           "patching_grid", "path_patching", "run_metric"]


# ---- activation patching ---------------------------------------------------------------------------------------------

@jit
def _patching(model, clean, corrupted, metric, site, over, reuse_clean):
    source = model.run(corrupted, capture=[site])[1][site]  # [*batch, layer, *site]
    return grid_from_values(model, clean, metric, site, over, "patch", source, True, reuse_clean)


DIRECTIONS = ("denoising", "noising")


def patching_grid(
    model: HookedModel, clean: Int[Array, "*batch pos"], corrupted: Int[Array, "*batch pos"], metric: Metric,
    site: str = "resid_pre", over: Sequence[str] = ("layer", "pos"), reuse_clean: bool = True, *, direction: str,
) -> Float[Array, "layer *cells"]:
    """Activation patching, one compiled call for the whole grid, in the `direction` you name.

    - `direction="denoising"` (TransformerLens's `get_act_patch_*`): run the **corrupted** input and patch each cell
      of `site` in from the **clean** run; a cell matters if it restores the clean metric.
    - `direction="noising"`: run the **clean** input and patch each cell in from the **corrupted** run; a cell matters
      if it destroys the clean metric.

    **Arguments:**

    - `model`: a toymi model whose kind declares grid sites (`HookedModel.grid_entry`): a `Transformer`, a
      `ResidualMLP` (its inputs are then feature vectors, `[n_features]` or `[batch, n_features]`).
    - `clean`, `corrupted`: tokens of one shape, `[pos]` or `[batch, pos]` (example `b` patched from example `b`).
    - `direction`: `"denoising"` or `"noising"` (required: the two are easy to read backwards).
    - `metric`: logits (`[batch, pos, d_vocab_out]`, or `[pos, d_vocab_out]`) -> scalar, e.g.
      `toymi.dissect.metrics.LogitDiff`. Pass the same object again to reuse the compiled grid.
    - `site`: one of `patchable_sites(model)`; for a transformer the residual stream (`resid_pre`, `resid_mid`, `resid_post`), a block's
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
    return scalar_metric(metric, model.run(tokens)[0])


def run_metric(model: HookedModel, tokens: Int[Array, "*batch pos"], metric: Metric) -> Float[Array, ""]:
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
        return scalar_metric(metric, logits)

    layers, heads = jnp.meshgrid(jnp.arange(n_layers), jnp.arange(n_heads), indexing="ij")
    return jax.vmap(cell)(layers.ravel(), heads.ravel()).reshape(n_layers, n_heads)


def path_patching(
    model: HookedModel, clean: Int[Array, "*batch pos"], corrupted: Int[Array, "*batch pos"], metric: Metric,
    receivers: Sequence[tuple[int, int]] | None = None, receiver_input: str | None = None,
) -> Float[Array, "layer head"]:
    """Path patching (Wang et al. 2022, as in ARENA): the effect of each sender head along one path only.

    For each sender head: (1) run the clean input with every head's output `z` frozen to its clean value except the
    sender's, which takes its corrupted value (MLPs recompute, so the path may go through them); (2) read the
    receivers' `receiver_input` (`q`, `k` or `v`) in that run; (3) run the clean input again with only those receiver
    inputs patched, and take the metric. Without receivers the path ends at the logits: the metric of run (1).

    **Arguments:**

    - `model`, `clean`, `corrupted`, `metric`: as for `patching_grid` (a model with heads: a transformer).
    - `receivers`: `(layer, head)` pairs, or None for the logits.
    - `receiver_input`: `"q"`, `"k"` or `"v"` (with receivers), else None.

    **Returns:** `[layer, head]` over senders: the metric with that sender's path patched. Senders at or after a
    receiver's layer cannot reach its input and give the clean metric.
    """
    check_model(model)
    if "z" not in model.sites:
        raise ValueError(f"path patching follows heads; a {model.kind} model has none")
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
