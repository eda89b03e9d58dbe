"""Exact edge patching: the metric with each edge patched alone, every edge of the graph in one compiled call.

Each edge is data (a one-hot ablation matrix); `jax.vmap` over the edges runs them all in one program, where ACDC
runs one patched forward pass per edge.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.circuits.forward import ablation_values, batched_forward, graph_of
from toymi.circuits.graph import Graph
from toymi.dissect.patching import DIRECTIONS, Metric, _scalar, check_model, check_tokens
from toymi.jit import jit


class EdgeEffects(NamedTuple):
    """`patched[e]`: the metric with edge e alone patched; `baseline`: the metric of the unpatched run."""

    patched: Float[Array, " edge"]
    baseline: Float[Array, ""]
    graph: Graph

    @property
    def effect(self) -> Float[Array, " edge"]:
        return self.patched - self.baseline


class Setup(NamedTuple):
    """What every method needs: the tokens the model runs on and what ablated edges carry instead."""

    run: Int[Array, "batch pos"]
    other: Float[Array, "batch sender pos d_model"]


def setup(model, clean, corrupted, *, direction: str, ablation: str = "patch", key=None) -> Setup:
    """Checked tokens and ablation values, named as in `patching_grid`.

    - `direction="noising"`: run `clean`; an ablated edge carries its value from `corrupted` (or the ablation of it).
    - `direction="denoising"`: run `corrupted`; a patched edge carries its value from `clean`.
    - `ablation`: `patch` (the other input, example by example), `zero`, `mean` (over the other input's batch) or
      `resample` (a random example of the other input; needs `key`).
    """
    check_model(model)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'denoising' (run corrupted, patch in clean values) or 'noising' (run "
                         f"clean, patch in corrupted values), got {direction!r}")
    clean, corrupted = check_tokens(model, clean, corrupted)
    if clean.ndim == 1:
        clean, corrupted = clean[None], corrupted[None]
    run, source = (clean, corrupted) if direction == "noising" else (corrupted, clean)
    return Setup(run, ablation_values(model, source, ablation, key))


def one_hot_ablation(graph: Graph, edge: Int[Array, "2"]) -> Float[Array, "sender receiver"]:
    return jnp.zeros(graph.valid.shape).at[edge[0], edge[1]].set(1.0)


@jit
def _all_edges(model, run, other, metric, edges):
    graph = graph_of(model.config)

    def one(edge):
        return _scalar(metric, batched_forward(model, run, other, one_hot_ablation(graph, edge)))

    baseline = _scalar(metric, batched_forward(model, run, other, jnp.zeros(graph.valid.shape)))
    return jax.vmap(one)(edges), baseline


def edge_patching(model, clean, corrupted, metric: Metric, *, direction: str, ablation: str = "patch",
                  key=None, edges=None) -> EdgeEffects:
    """The metric with each edge patched alone (exact), all edges (or the `[n, 2]` `edges` given) in one call.

    **Arguments:** as `setup`, plus `metric` (logits `[batch, pos, d_vocab_out]` -> scalar, as for `patching_grid`).

    **Returns:** `EdgeEffects`, over `graph.edges` (or `edges`).
    """
    s = setup(model, clean, corrupted, direction=direction, ablation=ablation, key=key)
    graph = graph_of(model.config)
    chosen = graph.edges if edges is None else np.asarray(edges)
    patched, baseline = _all_edges(model, s.run, s.other, metric, jnp.asarray(chosen))
    return EdgeEffects(patched, baseline, graph)


@jit
def _with_ablated(model, run, other, ablated):
    graph = graph_of(model.config)
    matrix = jnp.zeros(graph.valid.shape).at[graph.edges[:, 0], graph.edges[:, 1]].set(ablated.astype(jnp.float32))
    return batched_forward(model, run, other, matrix)


def logits_with_edges(model, s: Setup, kept: np.ndarray) -> Float[Array, "batch pos d_vocab_out"]:
    """Logits of `s.run` with every edge outside `kept` (a boolean `[n_edges]` mask) ablated at once: the circuit
    `kept` alone. Removed edges compound (an ablated sender changes what its kept downstream edges carry)."""
    kept = np.asarray(kept, bool)
    n = graph_of(model.config).n_edges
    if kept.shape != (n,):
        raise ValueError(f"kept must be a boolean mask over the graph's {n} edges, got shape {kept.shape}")
    return _with_ablated(model, s.run, s.other, jnp.asarray(~kept))
