"""Induction: which heads attend like previous-token and induction heads, how they compose, and whether they copy."""

from __future__ import annotations

import jax
import numpy as np

from toymi.analysis.induction import second_copy_head_patching
from toymi.dissect.attention import head_scores, repeated_random_tokens
from toymi.dissect.circuits import composition_scores, ov_copying_scores
from toymi.dissect.probes import capture_site
from toymi.plot.attention import attention_patterns, composition_heatmaps, head_score_heatmaps
from toymi.plot.patching import patching_heatmaps


def induction_recipe(run, report, smoke: bool) -> None:
    model, config = run.model, run.model.config
    vocab = min(config.d_vocab, config.d_vocab_out)  # tokens that are also targets (not a BOS-only input token)
    half = min(16 if not smoke else 6, (config.n_ctx - 1) // 2, vocab)
    bos = vocab if getattr(run.task, "bos", False) else None  # sequences as the model was trained on them
    tokens = repeated_random_tokens(jax.random.PRNGKey(0), 8 if smoke else 128, half, vocab, bos=bos)
    scores = {k: np.asarray(v) for k, v in head_scores(model, tokens).items()}
    report.section("Head scores", f"Attention on {tokens.shape[0]} sequences of {half} distinct random tokens "
                   f"repeated twice{' after BOS' if bos is not None else ''}: previous-token (to position − 1), "
                   "duplicate-token (to the earlier copy of the same token) and induction (to the token after the "
                   "earlier copy). Heads above ~0.4 count.")
    report.figure("head_scores", head_score_heatmaps(scores), "head scores per layer and head")
    best = {name: np.unravel_index(np.argmax(s), s.shape) for name, s in scores.items()}
    report.numbers("head_scores", {f"top {name} head": f"L{l}H{h}" for name, (l, h) in best.items()}
                   | {f"top {name} score": float(scores[name][best[name]]) for name in scores}
                   | {"induction heads (score > 0.4)": [f"L{l}H{h} {scores['induction'][l, h]:.3f}"
                                                        for l, h in zip(*np.nonzero(scores["induction"] > 0.4))]})
    pattern = capture_site(model, tokens[:1], "pattern")[0]
    report.figure("patterns", attention_patterns(np.asarray(pattern)), "every head's pattern on one "
                  "repeated sequence (induction heads: a stripe one off the diagonal in the second half)")
    _patching(model, tokens[: 8 if smoke else 32], half, bos, report)
    if config.n_layers > 1:
        comp = {kind: np.asarray(composition_scores(model, kind)) for kind in ("Q", "K", "V")}
        report.section("Composition", "How much each later head's query/key/value reads what an earlier head "
                       f"writes (Elhage et al.); random matrices give about 1/√d_model = {config.d_model ** -0.5:.2f}.")
        report.figure("composition", composition_heatmaps(comp, baseline=config.d_model ** -0.5), "Q/K/V composition")
        k = np.nan_to_num(comp["K"], nan=-1)
        la, ha, lb, hb = np.unravel_index(np.argmax(k), k.shape)
        report.numbers("composition", {"strongest K-composition": f"L{la}H{ha} → L{lb}H{hb}",
                                       "its score": float(k[la, ha, lb, hb])})
    if config.d_vocab == config.d_vocab_out:
        copying = np.asarray(ov_copying_scores(model))
        report.section("OV copying", "Eigenvalue copying score of each head's OV circuit: 1 copies its input token "
                       "to the output, −1 suppresses it.")
        report.table(["layer"] + [f"H{h}" for h in range(config.n_heads)],
                     [[layer, *copying[layer]] for layer in range(config.n_layers)])
        report.metrics["ov_copying"] = copying.tolist()


def _patching(model, tokens, half: int, bos: int | None, report) -> None:
    out = second_copy_head_patching(model, tokens, half, bos)
    clean, broken, grid = out["clean"], out["corrupted"], out["grid"]
    report.section("Head patching", "Loss on the second copy when one head's output (`z`) comes from a run whose "
                   "first copy was replaced by other tokens (noising; one compiled call for the whole grid).")
    report.figure("head_patching", patching_heatmaps({"z, every position": grid}, center=clean,
                                                     xlabels={"z, every position": "head"},
                                                     colorbar_label="loss on the second copy"),
                  f"loss on the second copy with each head patched (clean {clean:.3f}, corrupted {broken:.3f})")
    layer, head = np.unravel_index(np.argmax(grid), grid.shape)
    report.numbers("head_patching", {"clean loss": clean, "corrupted loss": broken,
                                     "head whose patch hurts most": f"L{layer}H{head}",
                                     "its loss": float(grid[layer, head])})
