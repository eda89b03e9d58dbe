"""Scoring a circuit-discovery method: ROC AUC against the true edges, and faithfulness curves with MIB's CPR / CMD.

Faithfulness of a circuit C (MIB, Mueller et al. 2025): `f(C) = (m(C) - m(empty)) / (m(full) - m(empty))`, the
share of the full model's metric the circuit recovers, where `m(C)` is the metric with every edge outside C ablated.
The curve keeps the top-k edges of a method's ranking for k = 0 .. n_edges, every k in one compiled call. Over the
fraction of edges kept, CPR is the area under the curve (higher is better: performance recovered early) and CMD the
area between the curve and 1 (lower is better: the circuits behave like the full model). MIB evaluates at a few
fractions (0.1% .. 100%); a toy graph has few enough edges to take them all.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from toymi.circuits.forward import batched_forward, graph_for
from toymi.dissect.grid import scalar_metric
from toymi.jit import jit


def roc_auc(scores, true_edges) -> float:
    """ROC AUC of ranking the edges by |score| against the boolean `[n_edges]` mask of true edges."""
    true_edges = np.asarray(true_edges, bool)
    if true_edges.all() or not true_edges.any():
        raise ValueError("ROC AUC needs both true and false edges")
    from sklearn.metrics import roc_auc_score  # imported when first needed: scikit-learn takes ~2 s to import,
    # which every import of this module paid (the attribution pages and reports, and each test worker's collection)

    return float(roc_auc_score(true_edges, np.abs(np.asarray(scores, np.float64))))


def ranking(scores) -> np.ndarray:
    """Edge indices from the highest |score| down (ties keep graph order)."""
    return np.argsort(-np.abs(np.asarray(scores, np.float64)), kind="stable")


@jit
def _metrics_of_circuits(model, run, other, metric, kept):
    graph = graph_for(model, other)
    edges = jnp.asarray(graph.edges)

    def one(keep):
        ablate = jnp.zeros(graph.valid.shape).at[edges[:, 0], edges[:, 1]].set(1.0 - keep)
        return scalar_metric(metric, batched_forward(model, run, other, ablate))

    return jax.vmap(one)(kept.astype(jnp.float32))


class Faithfulness(NamedTuple):
    kept: np.ndarray  # [n_edges + 1]: 0 .. n_edges edges kept
    faithfulness: np.ndarray  # f at each size
    cpr: float
    cmd: float


def faithfulness_curve(model, run, other, metric, scores) -> Faithfulness:
    """`f` of the top-k circuits of `scores` for every k, with CPR and CMD (areas over the fraction kept)."""
    n = graph_for(model, other).n_edges
    order = ranking(scores)
    position = np.empty(n, int)
    position[order] = np.arange(n)
    kept = position[None, :] < np.arange(n + 1)[:, None]  # [k, edge]: the top k edges
    m = np.asarray(_metrics_of_circuits(model, run, other, metric, jnp.asarray(kept)), np.float64)
    empty, full = m[0], m[-1]
    if abs(full - empty) < 1e-9:
        raise ValueError("the full model and the empty circuit give the same metric: faithfulness is undefined")
    f = (m - empty) / (full - empty)
    x = np.arange(n + 1) / n
    return Faithfulness(np.arange(n + 1), f, float(np.trapezoid(f, x)), float(np.trapezoid(np.abs(1 - f), x)))
