"""Every circuit-discovery method behind one interface: a score per edge, the circuit at a threshold, wall time.

`discover(name, model, setup, metric)` runs one method on a `Setup` (`toymi.circuits.patching.setup`). Scores are
"larger |score| = more important"; thresholds are in the metric's units, by default 1% of the gap between the full
model and the empty circuit (every edge ablated), except edge pruning's, which is a keep-probability (0.5).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from toymi.circuits import attribution
from toymi.circuits.acdc import acdc_sweep
from toymi.circuits.forward import graph_for
from toymi.circuits.patching import Setup, _all_edges, as_static
from toymi.circuits.pruning import edge_pruning
from toymi.circuits.scoring import _metrics_of_circuits

import jax.numpy as jnp

METHODS = ("exact", "eap", "eap_ig", "acdc", "edge_pruning", "node_patching", "node_attribution")


class Found(NamedTuple):
    method: str
    scores: np.ndarray  # [n_edges]
    circuit: np.ndarray  # [n_edges] bool: the edges kept at the threshold
    threshold: float
    seconds: float  # wall time, compilation included


def metric_gap(model, s: Setup, metric) -> float:
    """|metric(full model) - metric(every edge ablated)|: the unit of the default thresholds."""
    n = graph_for(model, s.other).n_edges
    m = np.asarray(_metrics_of_circuits(model, s.run, s.other, metric, jnp.asarray(np.stack([np.zeros(n),
                                                                                              np.ones(n)]))))
    return float(abs(m[1] - m[0]))


def _scores(name, model, s: Setup, metric, threshold, sweep):
    graph = graph_for(model, s.other)
    if name == "exact":
        patched, baseline = _all_edges(model, s.run, s.other, metric, as_static(graph.edges))
        return np.asarray(patched - baseline), None
    if name == "eap":
        return attribution.eap(model, *s, metric), None
    if name == "eap_ig":
        return attribution.eap_ig(model, *s, metric), None
    if name == "acdc":
        thresholds = sorted(set(sweep) | {threshold})
        scores = acdc_sweep(model, *s, metric, thresholds)
        return scores, scores >= threshold
    if name == "edge_pruning":
        scores = edge_pruning(model, *s, metric)
        return scores, scores > 0.5
    if name in ("node_patching", "node_attribution"):
        nodes = attribution.node_effects(model, *s, metric, exact=name == "node_patching")
        return attribution.edges_from_nodes(graph, nodes), None
    raise ValueError(f"unknown method {name!r}; methods are: {', '.join(METHODS)}")


def discover(name: str, model, s: Setup, metric, threshold: float | None = None, sweep=None) -> Found:
    """Run method `name` (one of `METHODS`). `threshold` (metric units) defaults to 1% of `metric_gap`; ACDC's
    `sweep` of thresholds defaults to that gap times 10^-4 .. 10^0 (nine values)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; methods are: {', '.join(METHODS)}")
    if threshold is None or sweep is None:
        default_threshold, default_sweep = default_thresholds(metric_gap(model, s, metric))
        threshold = default_threshold if threshold is None else threshold
        sweep = default_sweep if sweep is None else sweep
    threshold, sweep = float(threshold), np.asarray(sweep, float)
    start = time.perf_counter()
    scores, circuit = _scores(name, model, s, metric, threshold, sweep)
    seconds = time.perf_counter() - start
    if circuit is None:
        circuit = np.abs(scores) > threshold
    used = 0.5 if name == "edge_pruning" else threshold
    return Found(name, np.asarray(scores, np.float64), np.asarray(circuit, bool), used, seconds)


def default_thresholds(gap: float) -> tuple[float, np.ndarray]:
    """The default threshold (1% of the metric gap) and ACDC sweep (the gap times 10^-4 .. 10^0, nine values)."""
    return 0.01 * gap, gap * np.logspace(-4, 0, 9)


def discover_all(methods, model, s: Setup, metric) -> list[Found]:
    """`discover` for each of `methods` with the default threshold and ACDC sweep, the metric gap computed once."""
    threshold, sweep = default_thresholds(metric_gap(model, s, metric))
    return [discover(m, model, s, metric, threshold=threshold, sweep=sweep) for m in methods]
