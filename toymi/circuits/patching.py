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

from toymi.circuits.exact import clean_cache, head_and_kind, receiver_group, receiver_logits
from toymi.circuits.forward import ablation_values, batched_forward, graph_for, graph_forward
from toymi.circuits.graph import Graph
from toymi.dissect.grid import Metric, check_model, check_tokens, scalar_metric
from toymi.dissect.patching import DIRECTIONS
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


def setup(model, clean, corrupted, *, direction: str, ablation: str = "patch", key=None,
          split_input: bool = False) -> Setup:
    """Checked tokens and ablation values, named as in `patching_grid`.

    - `direction="noising"`: run `clean`; an ablated edge carries its value from `corrupted` (or the ablation of it).
    - `direction="denoising"`: run `corrupted`; a patched edge carries its value from `clean`.
    - `ablation`: `patch` (the other input, example by example), `zero`, `mean` (over the other input's batch) or
      `resample` (a random example of the other input; needs `key`).
    - `split_input`: one input sender per position (`input[p]`) instead of one `input`; every method then scores the
      edges of that graph (`graph_for(model, setup.other)`).
    """
    check_model(model)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'denoising' (run corrupted, patch in clean values) or 'noising' (run "
                         f"clean, patch in corrupted values), got {direction!r}")
    clean, corrupted = check_tokens(model, clean, corrupted)
    if clean.ndim == 1:
        clean, corrupted = clean[None], corrupted[None]
    run, source = (clean, corrupted) if direction == "noising" else (corrupted, clean)
    return Setup(run, ablation_values(model, source, ablation, key, split_input))


def as_static(edges) -> tuple:
    """`[n, 2]` edges as a hashable tuple of pairs (a static argument of the compiled call)."""
    return tuple(map(tuple, np.asarray(edges, int).tolist()))


def one_hot_ablation(graph: Graph, edge: Int[Array, "2"]) -> Float[Array, "sender receiver"]:
    return jnp.zeros(graph.valid.shape).at[edge[0], edge[1]].set(1.0)


@jit
def _all_edges(model, run, other, metric, edges: tuple, reuse_clean: bool = True):
    """Edges (a tuple of `(sender, receiver)` pairs, static): the metric with each patched alone, and unpatched.

    With `reuse_clean`, edges are grouped by their receiver's kind and layer (static) and each edge's run recomputes
    only its receiver and what is downstream of it, from the unpatched run's cache (`toymi.circuits.exact`).
    """
    graph = graph_for(model, other)
    edges = np.asarray(edges, int).reshape(-1, 2)  # static: a tuple of pairs
    zeros = jnp.zeros(graph.valid.shape)
    clean = jax.vmap(lambda t, o: graph_forward(model, t, o, zeros))(run, other)
    baseline = scalar_metric(metric, clean[0])
    if not reuse_clean:
        def one(edge):
            return scalar_metric(metric, batched_forward(model, run, other, one_hot_ablation(graph, edge)))
        return jax.vmap(one)(jnp.asarray(edges)), baseline
    cache = clean_cache(model, run)
    delta = other - clean[1]  # [batch, sender, pos, d_model]: what patching each sender's edges adds
    groups = [receiver_group(graph, r) for r in edges[:, 1]]
    out = jnp.zeros(len(edges))
    for group in sorted(set(groups)):
        chosen = np.array([i for i, g in enumerate(groups) if g == group])
        head, kind = np.array([head_and_kind(graph, r) for r in edges[chosen, 1]]).T

        def one(d, h, k, group=group):  # d: [batch, pos, d_model], the sender's delta on each example
            run_one = lambda t, c, x: receiver_logits(model, group, t, c, x, h, k)  # noqa: E731
            return scalar_metric(metric, jax.vmap(run_one)(run, cache, d))

        values = jax.vmap(one)(jnp.swapaxes(delta[:, edges[chosen, 0]], 0, 1), jnp.asarray(head), jnp.asarray(kind))
        out = out.at[chosen].set(values)
    return out, baseline


def _checked_edges(graph: Graph, edges) -> np.ndarray:
    """`edges` as `[n, 2]` (sender, receiver) indices, each an edge of `graph` (else a ValueError naming it)."""
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(f"edges must be integer (sender, receiver) pairs, shape [n, 2]; got {edges.dtype} "
                         f"{edges.shape} (graph.edges holds them all)")
    n_s, n_r = graph.valid.shape
    for s, r in edges:
        if not (0 <= s < n_s and 0 <= r < n_r) or not graph.valid[s, r]:
            what = (f"{graph.senders[s]}->{graph.receivers[r]}" if 0 <= s < n_s and 0 <= r < n_r
                    else f"({s}, {r})")
            raise ValueError(f"{what} is not an edge of this graph (a sender feeds only receivers downstream)")
    return edges


def edge_patching(model, clean, corrupted, metric: Metric, *, direction: str, ablation: str = "patch",
                  key=None, edges=None, reuse_clean: bool = True, split_input: bool = False) -> EdgeEffects:
    """The metric with each edge patched alone (exact), all edges (or the `[n, 2]` `edges` given) in one call.

    **Arguments:** as `setup`, plus `metric` (logits `[batch, pos, d_vocab_out]` -> scalar, as for `patching_grid`);
    `reuse_clean=False` runs every edge's forward pass from the input (the reference; same numbers).

    **Returns:** `EdgeEffects`, over `graph.edges` (or `edges`).
    """
    check_model(model)
    s = setup(model, clean, corrupted, direction=direction, ablation=ablation, key=key, split_input=split_input)
    graph = graph_for(model, s.other)
    chosen = graph.edges if edges is None else _checked_edges(graph, edges)
    patched, baseline = _all_edges(model, s.run, s.other, metric, as_static(chosen), reuse_clean)
    return EdgeEffects(patched, baseline, graph)


@jit
def _with_ablated(model, run, other, ablated):
    graph = graph_for(model, other)
    matrix = jnp.zeros(graph.valid.shape).at[graph.edges[:, 0], graph.edges[:, 1]].set(ablated.astype(jnp.float32))
    return batched_forward(model, run, other, matrix)


def logits_with_edges(model, s: Setup, kept: np.ndarray) -> Float[Array, "batch pos d_vocab_out"]:
    """Logits of `s.run` with every edge outside `kept` (a boolean `[n_edges]` mask) ablated at once: the circuit
    `kept` alone. Removed edges compound (an ablated sender changes what its kept downstream edges carry)."""
    kept = np.asarray(kept, bool)
    n = graph_for(model, s.other).n_edges
    if kept.shape != (n,):
        raise ValueError(f"kept must be a boolean mask over the graph's {n} edges, got shape {kept.shape}")
    return _with_ablated(model, s.run, s.other, jnp.asarray(~kept))
