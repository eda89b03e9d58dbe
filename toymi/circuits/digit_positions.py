"""Which input positions each answer digit's circuit reads in an addition model, found by each discovery method and
scored against what the task states.

A question is `a_{n-1} .. a_0 + b_{n-1} .. b_0 =`, its answer `s_n .. s_0` written most significant first and
teacher-forced (`toymi.tasks.addition`). Answer digit `s_i` (i < n) is `(a_i + b_i + c_i) mod 10`, the carry `c_i`
a function of the digits below i. So, of the positions before the one that predicts `s_i`:

- **certain:** a_i's and b_i's. Changing either alone always changes s_i (the carry does not depend on them), so a
  model that answers right must read both.
- **certain, through the carry:** the less significant digits (a_j, b_j, j < i). Changing one alone changes s_i on
  the questions where the carry it starts or stops reaches digit i (every digit between summing to 9; for j = i - 1
  none is between), so a model that answers every question right reads each of them too, though on fewer questions
  the further below.
- **certain for the function, judged for the model:** the more significant digits (a_j, b_j, j > i). They never
  change s_i, but a model may let them move its logits without changing its answer.
- **judged:** the answer digits already written (s_n .. s_{i+1}: functions of the question, so redundant with it);
  `+` and `=` are the same in every question, so patching cannot change them.

The leading digit s_n is the final carry: no single position is certain for it, and it is left out.

Per digit, the metric is the right digit's logit minus the mean logit at the position that predicts it
(`TargetLogit`); the graph splits the input by position (`input[p]`), patched from other eval questions (noising).
A method's score for position p is the largest |score| of an edge from `input[p]` (`position_scores`). Scores: the
AUC of {a_i, b_i} against the more significant digits (the certain part of the truth; NaN for digit n - 1, which
has none above it), the AUC of the less significant digits against the more significant ones (the carry's part;
NaN for digits 0 and n - 1), whether the two highest question-digit positions are exactly {a_i, b_i}, the share of the
position scores on the own pair, on the digits below, above, and on the answer digits written, and whether the
method's circuit (at its threshold) reads both own positions and how many positions above it reads.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from toymi.circuits.forward import graph_for
from toymi.circuits.gate_positions import position_scores, positions_in_circuit
from toymi.circuits.graph import Graph
from toymi.circuits.methods import Found, discover_all
from toymi.circuits.patching import setup
from toymi.circuits.planted import TargetLogit
from toymi.circuits.scoring import roc_auc
from toymi.errors import ConfigError

N_DIGIT_INPUTS = 128  # clean eval questions per study (and as many corrupted)
PARTS = ("own", "below", "above", "answer")  # the position groups whose share of the scores is reported


def check_addition(task, tokens=None) -> None:
    """A one-line error unless `task` is an addition task (and `tokens`, when given, its full sequences
    `[batch, 3 n + 3]`)."""
    from toymi.tasks.addition import Addition

    if not isinstance(task, Addition):
        raise ConfigError(f"the per-digit truth is addition's; got a {type(task).__name__} task")
    length = 3 * task.n_digits + 3
    if tokens is not None and (np.ndim(tokens) != 2 or np.shape(tokens)[1] != length):
        raise ValueError(f"tokens must be whole questions and answers [batch, {length}], got shape "
                         f"{np.shape(tokens)}")


def digit_groups(n_digits: int, digit: int) -> dict[str, np.ndarray]:
    """The positions of each group for answer digit `digit` (< n_digits) of an `n_digits` question: `own` (a_i,
    b_i), `below` (less significant question digits), `above` (more significant), `answer` (s_n .. s_{i+1})."""
    n, i = n_digits, digit
    if not 0 <= i < n:
        raise ValueError(f"answer digit {i} has no certain positions: digits 0 .. {n - 1} do (s_{n} is the final "
                         "carry)")
    a, b = (lambda j: n - 1 - j), (lambda j: 2 * n - j)  # where a_j and b_j sit, most significant first
    return {"own": np.array([a(i), b(i)]), "below": np.array([p(j) for p in (a, b) for j in range(i)], int),
            "above": np.array([p(j) for p in (a, b) for j in range(i + 1, n)], int),
            "answer": np.arange(2 * n + 2, 3 * n + 2 - i)}


class DigitResult(NamedTuple):
    """One method on one answer digit: `positions[p]` its score for position p (every position up to the one that
    predicts the digit); `auc_vs_above` of the own pair against the digits above; `auc_below_vs_above` of the
    digits below (the carry) against those above; `top_two`; `shares` of the
    position scores per group (`PARTS`); `reads_own` whether its circuit keeps edges from both own positions;
    `above_kept` how many positions above it keeps; `n_edges`, `seconds`."""

    digit: int
    method: str
    positions: np.ndarray
    auc_vs_above: float
    auc_below_vs_above: float
    top_two: bool
    shares: dict
    reads_own: bool
    above_kept: int
    n_edges: int
    seconds: float

    def as_dict(self) -> dict:
        return {**self._asdict(), "positions": self.positions.tolist()}


def digit_position_study(model, task, methods, n_inputs: int = N_DIGIT_INPUTS, digits=None,
                         eval_set: str = "test") -> list[DigitResult]:
    """Every method of `methods` on every answer digit 0 .. n - 1 of an addition `task` (or the digits `digits`),
    one `DigitResult` each: the first `n_inputs` questions of the eval set `eval_set` run (`"test"`: uniform;
    `"cascade"`: built to carry and cascade, where a far digit below reaches s_i more often), patched from the next
    `n_inputs`; the ablation values are computed once and shared by every digit (only the metric changes)."""
    return [digit_result(d.digit, d.found.method, position_scores(d.graph, d.found.scores, d.at + 1),
                         positions_in_circuit(d.graph, d.found.circuit, d.at + 1), d.groups,
                         int(d.found.circuit.sum()), d.found.seconds)
            for d in digit_discoveries(model, task, methods, n_inputs, digits, eval_set)]


class DigitDiscovery(NamedTuple):
    """One method's discovery for one answer digit: `groups` (`digit_groups`), `at` the position that predicts the
    digit, `graph` (input split by position), `found` (`toymi.circuits.methods.Found`), `tokens` the clean questions."""

    digit: int
    groups: dict
    at: int
    graph: Graph
    found: Found
    tokens: Int[Array, "batch pos"]


def digit_discoveries(model, task, methods, n_inputs: int = N_DIGIT_INPUTS, digits=None, eval_set: str = "test"):
    """Yield a `DigitDiscovery` per (digit, method), as `digit_position_study` describes its runs."""
    check_addition(task)
    sets = task.eval_batches()
    if eval_set not in sets:
        raise ConfigError(f"eval_set must be one of {sorted(sets)}, got {eval_set!r}")
    batch = sets[eval_set]
    if len(batch) < 2 * n_inputs:
        raise ConfigError(f"the digit study patches {n_inputs} {eval_set} questions from {n_inputs} others; the "
                          f"task's {eval_set} set has {len(batch)} (raise task.eval_size)")
    tokens = batch.tokens[: 2 * n_inputs]
    s = setup(model, tokens[:n_inputs], tokens[n_inputs:], direction="noising", split_input=True)
    graph = graph_for(model, s.other)
    n, predicted_at = task.n_digits, task.facts()["predicted_at"]
    for i in range(n) if digits is None else digits:
        groups, at = digit_groups(n, i), int(predicted_at[i])
        mask = jnp.zeros(tokens[:n_inputs].shape).at[:, at].set(1.0)
        metric = TargetLogit(jnp.where(mask > 0, batch.targets[:n_inputs], 0), mask)
        for found in discover_all(methods, model, s, metric):
            yield DigitDiscovery(i, groups, at, graph, found, tokens[:n_inputs])


def digit_result(digit: int, method: str, positions: np.ndarray, kept: np.ndarray, groups: dict, n_edges: int = 0,
                 seconds: float = 0.0) -> DigitResult:
    """Score one method's `positions` (its score per position) and `kept` (whether its circuit keeps an edge from
    each position) against `groups` (`digit_groups`)."""
    auc, auc_below, top_two, shares = position_truth_scores(positions, groups)
    return DigitResult(digit, method, positions, auc, auc_below, top_two, shares, bool(kept[groups["own"]].all()),
                       int(kept[groups["above"]].sum()), n_edges, seconds)


def position_truth_scores(positions: np.ndarray, groups: dict) -> tuple[float, float, bool, dict]:
    """`(auc, auc_below, top_two, shares)` of non-negative scores per position against one digit's `groups`: the
    AUC of the own pair against the digits above and of the digits below against those above (NaN where a group is
    empty), whether the two highest question positions are the own pair, and each group's share of the scores over
    the question and answer digits."""
    question = np.concatenate([groups["own"], groups["below"], groups["above"]])
    top = set(question[np.argsort(-positions[question], kind="stable")[:2]].tolist())
    total = positions[np.concatenate([question, groups["answer"]])].sum()
    shares = {g: float(positions[groups[g]].sum() / total) if total > 0 else float("nan") for g in PARTS}
    own, below = (_auc_over(positions, groups[g], groups["above"]) for g in ("own", "below"))
    return own, below, top == set(groups["own"].tolist()), shares


def _auc_over(positions: np.ndarray, certain: np.ndarray, absent: np.ndarray) -> float:
    """The ROC AUC of the `certain` positions' scores against the `absent` ones' (NaN if either is empty)."""
    if not len(certain) or not len(absent):
        return float("nan")
    return roc_auc(positions[np.concatenate([certain, absent])], np.arange(len(certain) + len(absent)) < len(certain))


def summary(results: list[DigitResult]) -> list[dict]:
    """Per method: digits, mean and min AUC against the digits above (where there are any), the share of digits whose
    top two positions are their own pair and whose circuit reads both, the mean shares per group, the mean number of
    positions above kept, the mean circuit size, seconds in all; and the mean and min AUC of the digits below against
    those above."""
    rows = []
    for method in dict.fromkeys(r.method for r in results):
        mine = [r for r in results if r.method == method]
        rows.append({"method": method, "digits": len(mine), **mean_and_min([r.auc_vs_above for r in mine], "auc"),
                     **mean_and_min([r.auc_below_vs_above for r in mine], "auc_below"),
                     "top_two": float(np.mean([r.top_two for r in mine])),
                     "reads_own": float(np.mean([r.reads_own for r in mine])),
                     **{f"share_{g}": float(np.nanmean([r.shares[g] for r in mine])) for g in PARTS},
                     "above_kept": float(np.mean([r.above_kept for r in mine])),
                     "edges_mean": float(np.mean([r.n_edges for r in mine])),
                     "seconds": float(sum(r.seconds for r in mine))})
    return rows


def mean_and_min(aucs: list[float], key: str) -> dict:
    """`{key_mean, key_min}` over the digits where the AUC is defined (None where it is nowhere)."""
    defined = np.array([a for a in aucs if a == a])
    return {f"{key}_mean": float(defined.mean()) if defined.size else None,
            f"{key}_min": float(defined.min()) if defined.size else None}


def auc_cell(row: dict, key: str) -> str:
    """`mean / min` of `row`'s `key` AUC, or – where it is nowhere defined."""
    return "–" if row[f"{key}_mean"] is None else f"{row[f'{key}_mean']:.3f} / {row[f'{key}_min']:.3f}"


COLUMNS = ("method | digits | AUC own pair vs digits above, mean / min | AUC digits below vs above, mean / min | "
           "top two = own pair | circuit reads both | share own / below / above / answer | positions above kept "
           "(mean) | edges kept (mean) | seconds |")


def markdown(rows: list[dict]) -> str:
    """`summary` rows as a markdown table."""
    lines = [f"| {COLUMNS}", "|---" * COLUMNS.count("|") + "|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['digits']} | {auc_cell(r, 'auc')} | {auc_cell(r, 'auc_below')} | "
                     f"{r['top_two']:.3f} | {r['reads_own']:.3f} | "
                     + " / ".join(f"{r[f'share_{g}']:.3f}" for g in PARTS)
                     + f" | {r['above_kept']:.2f} | {r['edges_mean']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines)
