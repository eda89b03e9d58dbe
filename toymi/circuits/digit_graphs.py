"""Attribution graphs of an addition model, scored against what the task states per answer digit
(`toymi.circuits.digit_positions`: the digit's own a_i and b_i certain, the digits below certain through the carry,
the digits above judged absent).

Each question's graph (`toymi.circuits.transformer_graph`: attention frozen, each MLP replaced by a transcoder, or
by the model's own ReLU or GELU neurons, exact) traces the right digit's logit at every position that predicts an
answer digit back to the input positions. Per digit, the mean over questions of each position's |total attribution|
(every path, the latents' gates frozen) is scored as the edge methods' position scores are: the AUCs of the own pair
and of the digits below against the digits above, whether the own pair is the top two, and the shares on the own
pair, below, above and on the answer digits written.

Input nodes are measured from zero (circuit tracing's convention for token embeddings) or from the question
`0…0+0…0=0…0` (`"zeros question"`): a digit's node is then its embedding minus 0's at that position, and a position
holding 0, `+` or `=` has none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from toymi.circuits.digit_positions import (
    auc_cell, check_addition, digit_groups, mean_and_min, position_truth_scores,
)
from toymi.circuits.transformer_graph_summary import summarise_transformer_graphs
from toymi.tasks.addition import sequence_tokens

BASELINES = ("zero", "zeros question")


def digit_graph_scores(model, task, transcoders: Sequence, tokens: Int[Array, "batch pos"], baseline: str = "zero",
                       chunk: int = 64) -> dict:
    """The graphs of `tokens` (full question-and-answer sequences of the addition `task`) scored per answer digit
    0 .. n - 1 (module docstring). Returns `{"digits": [{digit, auc_vs_above, auc_below_vs_above, top_two, shares,
    positions}, ...],
    "completeness_gap", "latent_share", "error_share"}` (the last two: mean over the digits' right-digit logits)."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    check_addition(task, tokens)
    n, (b, length) = task.n_digits, tokens.shape
    readout = tuple(int(p) for p in task.facts()["predicted_at"][:n])  # digit i is predicted at readout[i]
    right = np.asarray(tokens)[:, np.array(readout) + 1]  # [batch, n] the right digit at each readout
    d_out = model.config.d_vocab_out
    where = jax.nn.one_hot(right, d_out, dtype=bool).reshape(b, n * d_out)
    zeros = sequence_tokens(jnp.zeros((1, n), int), jnp.zeros((1, n), int))[0]
    s = summarise_transformer_graphs(model, transcoders, tokens, where, readout,
                                     zeros if baseline == "zeros question" else None, chunk)
    examples = np.asarray(s.examples).reshape(n, d_out)
    weight = examples / examples.sum(1, keepdims=True)  # each right digit's share of the questions
    per_digit = np.einsum("ik,ikp->ip", weight, np.asarray(s.attribution).reshape(n, d_out, length))
    digits = []
    for i in range(n):
        auc, auc_below, top_two, shares = position_truth_scores(per_digit[i, : readout[i] + 1], digit_groups(n, i))
        digits.append({"digit": i, "auc_vs_above": auc, "auc_below_vs_above": auc_below, "top_two": top_two,
                       "shares": shares, "positions": per_digit[i, : readout[i] + 1].tolist()})
    share = {k: float((weight * np.asarray(getattr(s, k)).reshape(n, d_out)).sum(1).mean())
             for k in ("latent_share", "error_share")}
    return {"digits": digits, "completeness_gap": float(s.completeness), **share}


def digit_graphs(model, task, transcoders: Sequence, tokens: Int[Array, "batch pos"],
                 baselines: Sequence[str] = BASELINES) -> dict[str, dict]:
    """`{baseline: digit_graph_scores(...)}` for each of `baselines`, each with the `"seconds"` it took (the table
    `graph_markdown` prints)."""
    out = {}
    for baseline in baselines:
        start = time.perf_counter()
        out[baseline] = {**digit_graph_scores(model, task, transcoders, tokens, baseline),
                         "seconds": time.perf_counter() - start}
    return out


GRAPH_COLUMNS = ("input nodes measured from | digits | AUC own pair vs digits above, mean / min | AUC digits below vs "
                 "above, mean / min | top two = own pair | share own / below / above / answer | latent share | "
                 "error share | completeness gap | seconds |")


def graph_markdown(scores: dict[str, dict]) -> str:
    """`{baseline: digit_graph_scores(...) with "seconds"}` as a markdown table, one row per baseline."""
    lines = [f"| {GRAPH_COLUMNS}", "|---" * GRAPH_COLUMNS.count("|") + "|"]
    for baseline, r in scores.items():
        digits = r["digits"]
        aucs = {**mean_and_min([d["auc_vs_above"] for d in digits], "auc"),
                **mean_and_min([d["auc_below_vs_above"] for d in digits], "auc_below")}
        shares = " / ".join(f"{np.mean([d['shares'][g] for d in digits]):.3f}" for g in digits[0]["shares"])
        lines.append(f"| {baseline} | {len(digits)} | {auc_cell(aucs, 'auc')} | {auc_cell(aucs, 'auc_below')} | "
                     f"{np.mean([d['top_two'] for d in digits]):.3f} | {shares} | {r['latent_share']:.3f} | "
                     f"{r['error_share']:.3f} | {r['completeness_gap']:.1e} | {r['seconds']:.1f} |")
    return "\n".join(lines)
