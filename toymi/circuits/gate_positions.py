"""Which input positions each gate's circuit reads in an AND-gate transformer, found by each discovery method and
scored against what the task states.

The AND-gate transformer reads feature j at position j and answers every gate at the readout (last) position. Gate
(a, b) is a function of features a and b alone, so its circuit reads positions a and b: that much the task states
(certain for a model that computes the gate right: changing x_a alone flips the gate whenever x_b is on). That it
reads no other position is the task's design, not a certainty: a trained model may let other inputs move a gate's
logit without flipping it (interference), so the positions outside {a, b} are judged absent. Which heads carry a
and b, through keys or values, the task does not say.

Per gate, the metric is that gate's margin alone (`GateMargin(..., gate=k)`); the graph splits the input by position
(`input[p]`), patched from other eval inputs (noising). A method's score for position p is the largest |score| of
an edge from `input[p]`; the position AUC ranks the features' positions against {a, b}. At the method's threshold,
its circuit should keep edges from positions a and b and from no other feature position (`in_circuit`). The edges
that patching cannot change (`certain_absences` on the split graph) are counted in each method's circuit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from toymi.circuits.forward import graph_for
from toymi.circuits.methods import discover_all
from toymi.circuits.patching import setup
from toymi.circuits.scoring import roc_auc
from toymi.circuits.targets import GateMargin, certain_absences
from toymi.errors import ConfigError

N_GATE_INPUTS = 128  # clean eval inputs per study (and as many corrupted): ~12 with a given gate on at p = 0.3


class GateResult(NamedTuple):
    """One method on one gate: `positions[p]` its score for feature position p; `auc` of those against the gate's
    inputs; `top_two` whether its two highest positions are exactly the gate's inputs; `in_circuit[p]` whether its
    circuit (at its threshold) keeps an edge from position p; `absent_kept` how many certainly-zero edges its circuit
    keeps; `n_edges` the size of its circuit."""

    gate: tuple[int, int]
    method: str
    positions: np.ndarray
    auc: float
    top_two: bool
    in_circuit: np.ndarray
    absent_kept: int
    n_edges: int
    seconds: float

    @property
    def reads_exactly_inputs(self) -> bool:
        """Whether the circuit keeps edges from the gate's two input positions and from no other feature position."""
        return bool((self.in_circuit == np.isin(np.arange(len(self.in_circuit)), self.gate)).all())

    @property
    def other_positions(self) -> int:
        """Feature positions outside the gate's inputs that the circuit keeps an edge from."""
        return int(np.delete(self.in_circuit, list(self.gate)).sum())

    def as_dict(self) -> dict:
        """The result as JSON-ready values (the per-gate rows of `gates.json` and the benchmark's results)."""
        return {"gate": list(self.gate), "method": self.method, "positions": self.positions.tolist(), "auc": self.auc,
                "top_two": self.top_two, "in_circuit": self.in_circuit.tolist(), "absent_kept": self.absent_kept,
                "n_edges": self.n_edges, "seconds": self.seconds}


def position_scores(graph, edge_scores, n_positions: int) -> np.ndarray:
    """`[n_positions]`: for each input position, the largest |score| of an edge from `input[p]` (a split graph)."""
    if not graph.input_split:
        raise ValueError("position scores need the input split by position (setup(..., split_input=True))")
    position, magnitude = graph.input_position_of_edges(), np.abs(np.asarray(edge_scores, np.float64))
    return np.array([magnitude[position == p].max() for p in range(n_positions)])


def positions_in_circuit(graph, circuit, n_positions: int) -> np.ndarray:
    """`[n_positions]` booleans: whether the circuit (a boolean `[n_edges]` mask) keeps an edge from `input[p]`."""
    position, circuit = graph.input_position_of_edges(), np.asarray(circuit, bool)
    return np.array([circuit[position == p].any() for p in range(n_positions)])


def gate_position_study(model, task, methods, n_inputs: int = N_GATE_INPUTS, gates=None) -> list[GateResult]:
    """Every method of `methods` on every gate of `task` (or the gate indices `gates`), one `GateResult` each.

    The first `n_inputs` eval inputs are run, patched from the next `n_inputs`; the split graph's ablation values are
    computed once and shared by all gates (only the metric changes, so every method compiles once)."""
    x, y = task.eval_set.x, task.eval_set.y
    if len(x) < 2 * n_inputs:
        raise ConfigError(f"the gate study patches {n_inputs} eval inputs from {n_inputs} others; the task's eval set "
                          f"has {len(x)} (raise task.n_eval)")
    tokens = task.model_inputs(task.eval_set, "transformer")
    s = setup(model, tokens[:n_inputs], tokens[n_inputs: 2 * n_inputs], direction="noising", split_input=True)
    graph = graph_for(model, s.other)
    absent = graph.edge_set(certain_absences(graph))
    n_features = task.n_features
    results = []
    for k in range(task.n_gates) if gates is None else gates:
        pair = tuple(int(i) for i in task.pairs[k])
        truth = np.isin(np.arange(n_features), pair)
        metric = GateMargin(y[:n_inputs], gate=k)
        for found in discover_all(methods, model, s, metric):
            positions = position_scores(graph, found.scores, n_features)
            top = set(np.argsort(-positions, kind="stable")[:2].tolist())
            results.append(GateResult(pair, found.method, positions, roc_auc(positions, truth), top == set(pair),
                                      positions_in_circuit(graph, found.circuit, n_features),
                                      int((found.circuit & absent).sum()), int(found.circuit.sum()), found.seconds))
    return results


def summary(results: list[GateResult]) -> list[dict]:
    """Per method: gates, mean and min position AUC, the share of gates whose top two positions are exactly its
    inputs, the share whose circuit reads exactly its inputs' positions and the mean number of other positions it
    reads, the mean circuit size, the most certainly-zero edges any of its circuits keeps, and seconds in all."""
    rows = []
    for method in dict.fromkeys(r.method for r in results):
        mine = [r for r in results if r.method == method]
        auc = np.array([r.auc for r in mine])
        rows.append({"method": method, "gates": len(mine), "auc_mean": float(auc.mean()), "auc_min": float(auc.min()),
                     "top_two": float(np.mean([r.top_two for r in mine])),
                     "circuit_exact": float(np.mean([r.reads_exactly_inputs for r in mine])),
                     "other_positions": float(np.mean([r.other_positions for r in mine])),
                     "edges_mean": float(np.mean([r.n_edges for r in mine])),
                     "absent_kept_max": int(max(r.absent_kept for r in mine)),
                     "seconds": float(sum(r.seconds for r in mine))})
    return rows


COLUMNS = ("method | gates | position AUC mean / min | top two = the gate's inputs | circuit reads exactly the "
           "inputs | other positions in the circuit (mean) | edges kept (mean) | certain-zero edges kept (max) | "
           "seconds |")


def row_cells(row: dict) -> str:
    """One `summary` row as markdown cells, from the method on (`COLUMNS`)."""
    return (f"{row['method']} | {row['gates']} | {row['auc_mean']:.3f} / {row['auc_min']:.3f} | {row['top_two']:.3f} | "
            f"{row['circuit_exact']:.3f} | {row['other_positions']:.2f} | {row['edges_mean']:.1f} | "
            f"{row['absent_kept_max']} | {row['seconds']:.1f} |")


def markdown(rows: list[dict]) -> str:
    """`summary` rows as a markdown table (`toymi circuits RUN --per-gate`)."""
    return "\n".join([f"| {COLUMNS}", "|---" * COLUMNS.count("|") + "|"] + [f"| {row_cells(r)}" for r in rows])
