"""ACDC (Conmy et al. 2023): greedy edge removal in reverse topological order, and its threshold sweep.

Starting from the full graph, visit each receiver from the logits back to the first layer, and each of its incoming
edges from the latest sender back to the input; remove the edge for good if that moves the metric away from the full
model's by less than `threshold` (ACDC measures the KL divergence to the full model; here it is the metric's
distance to the full model's value, in the metric's units). A node none of whose outputs survives is dead: its
incoming edges go without a test, as in ACDC. Every trial is one forward pass of one compiled program (the edge set is
data), called once per edge: this is the edge-by-edge cost that exact all-edge patching avoids.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float

from toymi.circuits.forward import batched_forward, graph_for
from toymi.dissect.grid import scalar_metric
from toymi.jit import jit


@jit
def _metric_with(model, run, other, metric, ablate):
    return scalar_metric(metric, batched_forward(model, run, other, ablate))


def acdc(model, run, other, metric, threshold: float) -> Bool[np.ndarray, " edge"]:
    """The edges ACDC keeps at `threshold` (a boolean `[n_edges]` mask)."""
    graph = graph_for(model, other)
    measure = lambda ablate: float(_metric_with(model, run, other, metric, ablate))  # noqa: E731
    ablated = np.zeros(graph.valid.shape, np.float32)
    full = measure(ablated)
    distance = 0.0  # of the current graph's metric from the full model's
    nodes = graph.receiver_nodes()
    for r in reversed(range(len(graph.receivers))):
        incoming = np.flatnonzero(graph.valid[:, r])[::-1]
        node = nodes[r]
        if node >= 0 and not (graph.valid[node] & (ablated[node] == 0)).any():
            ablated[incoming, r] = 1.0  # dead node: nothing it computes reaches the logits
            continue
        for s in incoming:
            ablated[s, r] = 1.0
            trial = abs(measure(ablated) - full)
            if trial - distance < threshold:
                distance = trial
            else:
                ablated[s, r] = 0.0
    return ablated[graph.edges[:, 0], graph.edges[:, 1]] == 0


def acdc_sweep(model, run, other, metric, thresholds) -> Float[np.ndarray, " edge"]:
    """ACDC at each threshold; an edge's score is the largest threshold at which it is kept (0 if never): ranking by
    it gives the ROC curve of the sweep."""
    scores = np.zeros(graph_for(model, other).n_edges)
    for threshold in sorted(thresholds):
        scores[acdc(model, run, other, metric, threshold)] = threshold
    return scores
