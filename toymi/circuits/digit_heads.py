"""Which heads carry each answer digit's own operands in an addition model: a judged truth per head, and how each
discovery method's edge scores rank it.

`toymi.circuits.digit_positions` states which positions answer digit s_i reads: a_i's and b_i's, certainly. Which
heads move them to the position that predicts s_i is the model's choice, so here it is judged from attention, as
the induction truth judges its heads (`toymi.circuits.trained`): a head of any layer whose attention from that
position puts at least `threshold` on a_i's position (the mean over the questions) carries a_i, and its value edge
from the embedding, `input[a_i] -> a<layer>.h<v>`, is in the truth (likewise b_i); the other heads' value edges
from those two positions are not. Judged, not certain: a head below the threshold may still move part of an operand,
and a later layer's head reads a_i's position after the earlier layers wrote there (`HeadTruth.attention` keeps every
head's share so that can be checked).

Scored per digit and method: the ROC AUC of the method's |edge scores| on the judged edges against the other
heads' value edges from the same two positions (NaN where either set is empty), and whether the method's circuit
(at its threshold) keeps every judged edge.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from toymi.circuits.digit_positions import N_DIGIT_INPUTS, digit_discoveries
from toymi.circuits.graph import Graph
from toymi.circuits.scoring import roc_auc

THRESHOLD = 0.3  # the induction truth's head-score threshold (`trained.induction_truth`)


class HeadTruth(NamedTuple):
    """One digit's judged heads: `attention[j, l, h]`, head h of layer l's mean attention from the predicting position
    to own position j (a_i's, then b_i's); `heads[j]`, the `(layer, head)`s at or above the threshold for
    position j."""

    digit: int
    positions: tuple[int, int]
    attention: np.ndarray
    heads: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


def head_truth(pattern: np.ndarray, digit: int, at: int, own: np.ndarray, threshold: float = THRESHOLD) -> HeadTruth:
    """The judged heads of one digit from every layer's attention `pattern` (`[batch, layer, head, query, key]`),
    read at the predicting position `at` on the own positions `own` (a_i's, b_i's)."""
    pattern = np.asarray(pattern)
    if pattern.ndim != 5:
        raise ValueError(f"pattern must be [batch, layer, head, query, key]; got shape {pattern.shape}")
    attention = pattern[:, :, :, at][..., own].mean(0).transpose(2, 0, 1)  # [own position, layer, head]
    heads = tuple(tuple((int(l), int(h)) for l, h in np.argwhere(row >= threshold)) for row in attention)
    return HeadTruth(digit, (int(own[0]), int(own[1])), attention, heads)


def judged_edges(graph: Graph, truth: HeadTruth) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the graph's edges `input[p] -> a<layer>.h<v>` from the own positions, every layer's heads:
    `(judged, others)`."""
    names = [(graph.senders[s], graph.receivers[r]) for s, r in graph.edges]
    judged, others = [], []
    for p, heads in zip(truth.positions, truth.heads):
        for layer in range(graph.config.n_layers):
            for h in range(graph.config.n_heads):
                index = names.index((f"input[{p}]", f"a{layer}.h{h}<v>"))
                (judged if (layer, h) in heads else others).append(index)
    return np.array(judged, int), np.array(others, int)


class HeadResult(NamedTuple):
    """One method on one digit's judged heads: `auc` of its |edge scores| on the judged value edges against the
    other heads' from the same positions; `keeps_judged`: whether its circuit keeps every judged edge (False where
    no head is judged)."""

    digit: int
    method: str
    heads: tuple[tuple[int, ...], tuple[int, ...]]
    auc: float
    keeps_judged: bool


def head_result(graph: Graph, found, truth: HeadTruth) -> HeadResult:
    judged, others = judged_edges(graph, truth)
    scores = np.abs(np.asarray(found.scores, np.float64))
    auc = (roc_auc(scores[np.concatenate([judged, others])], np.arange(len(judged) + len(others)) < len(judged))
           if len(judged) and len(others) else float("nan"))
    keeps = bool(len(judged)) and bool(np.asarray(found.circuit)[judged].all())  # nothing judged: nothing kept
    return HeadResult(truth.digit, found.method, truth.heads, auc, keeps)


def digit_head_study(model, task, methods, n_inputs: int = N_DIGIT_INPUTS, digits=None, eval_set: str = "test",
                     threshold: float = THRESHOLD) -> tuple[list[HeadTruth], list[HeadResult]]:
    """The judged heads of every answer digit (as `digit_position_study` runs its digits: the same questions,
    patches and methods) and each method's `HeadResult` on them."""
    truths, results, pattern = {}, [], None
    for d in digit_discoveries(model, task, methods, n_inputs, digits, eval_set):
        if pattern is None:
            _, acts = model.run(d.tokens, capture=["pattern"])
            pattern = np.asarray(acts["pattern"])  # [batch, layer, head, query, key]
        if d.digit not in truths:  # once per digit, not per method
            truths[d.digit] = head_truth(pattern, d.digit, d.at, d.groups["own"], threshold)
        results.append(head_result(d.graph, d.found, truths[d.digit]))
    return list(truths.values()), results


def head_rows(truths: list[HeadTruth], results: list[HeadResult]) -> list[dict]:
    """One JSON row per digit: its positions, judged heads (`[layer, head]`s) and every head's attention to them
    (`[position][layer][head]`), and per method its AUC and whether its circuit keeps every judged edge."""
    methods: dict[int, dict] = {}
    for r in results:
        methods.setdefault(r.digit, {})[r.method] = {"auc": r.auc, "keeps_judged": r.keeps_judged}
    return [{"digit": t.digit, "positions": list(t.positions), "heads": [[list(lh) for lh in h] for h in t.heads],
             "attention": np.asarray(t.attention).tolist(), "methods": methods[t.digit]} for t in truths]


def markdown(rows: list[dict]) -> str:
    """One line per digit (`head_rows`): its judged heads for a_i and for b_i with their attention, then each
    method's AUC, `✓` where its circuit keeps every judged edge."""
    methods = list(dict.fromkeys(m for r in rows for m in r["methods"]))
    lines = ["| digit | heads carrying a_i (attention) | heads carrying b_i (attention) | "
             + " | ".join(f"{m} AUC" for m in methods) + " |", "|---" * (3 + len(methods)) + "|"]
    for r in rows:
        carried = [", ".join(f"L{l}H{h} ({r['attention'][j][l][h]:.2f})" for l, h in r["heads"][j]) or "none"
                   for j in (0, 1)]
        cells = [f"{r['methods'][m]['auc']:.3f}{' ✓' if r['methods'][m]['keeps_judged'] else ''}" for m in methods]
        lines.append(f"| s_{r['digit']} | {carried[0]} | {carried[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
