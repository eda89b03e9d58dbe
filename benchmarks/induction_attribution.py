"""What an attribution graph with attention frozen sees of an induction circuit, against the model's own ablations
(`toymi.circuits.induction_graphs`).

    PYTHONPATH=. python benchmarks/induction_attribution.py          # the README table
    PYTHONPATH=. python benchmarks/induction_attribution.py --smoke  # the planted model only: a test runs this

At every repeated position t of the eval sequences, the logit of the right next token is traced back to the input
positions up to t. The mechanism reads three of them: s, the token copied (through the induction head's values),
and s - 1 and t, which make the head attend to s (its key, through the previous-token head, and its query). The
columns give the mean share of |attribution| (graph: attention patterns frozen, every other path followed) or of
|Δ logit| (ablation: that position's token embedding zeroed in the model itself) on each part, and how often s is the
largest. Models: the hand-written induction circuit of `toymi.circuits.planted.induction` (a control: two heads that
attend sharply, and two distractors), and `tasks/induction_quick.toml` trained into `--runs` (reused when there),
on its 512 `test` sequences.

The second table is the other half: the induction head's score from t to s split over pairs of input positions
(`toymi.circuits.qk_attribution`, QK attribution: everything before the head frozen, the score an exact sum over
(query-side source, key-side source) pairs), with the head found as the one attending most from t to s. Its mechanism
puts the score on the pair (t, s − 1): the query's own token meeting the key's previous token.

Writes `DIR/induction_attribution.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import runs_main  # noqa: E402
from attribution_graphs import train_model  # noqa: E402

from toymi.circuits.induction_graphs import PARTS, induction_attribution  # noqa: E402
from toymi.circuits.planted import induction  # noqa: E402
from toymi.circuits.qk_attribution import QK_PARTS, induction_head, induction_qk  # noqa: E402

SPEC = "tasks/induction_quick.toml"


def run(args, runs: Path) -> list[dict]:
    planted = induction(batch=64)
    models = [("planted (control)", lambda: (planted.model, planted.clean))]
    if not args.smoke:
        def trained():
            t = train_model(SPEC, runs, False)
            return t.model, t.task.eval_batches()["test"].tokens

        models.append(("induction_quick", trained))
    rows = []
    for label, load in models:
        model, tokens = load()
        t0 = time.perf_counter()
        scores = induction_attribution(model, tokens)
        seconds = time.perf_counter() - t0
        layer, head, attention = induction_head(model, tokens)
        t0 = time.perf_counter()
        qk = induction_qk(model, tokens, layer, head)
        rows.append({"model": label, **scores, "sequences": int(tokens.shape[0]), "seconds": seconds,
                     "qk": {"layer": layer, "head": head, "attention": attention, **qk,
                            "seconds": time.perf_counter() - t0}})
        print(graph_summary(rows[-1:]).splitlines()[-1] + "\n" + qk_summary(rows[-1:]).splitlines()[-1], flush=True)
    return rows


HEADER = ("| model | measured by | traced logits | share on s (copied) | on s − 1 | on t | elsewhere | s the largest | "
          "seconds |\n" + "|---" * 9 + "|")


def summary(rows: list[dict]) -> str:
    """Both README tables: what the graph and the ablations see, then the induction head's QK attribution."""
    return graph_summary(rows) + "\n\n" + qk_summary(rows)


def graph_summary(rows: list[dict]) -> str:
    out = [HEADER]
    for r in rows:
        for how, label in (("graph", "graph, attention frozen"), ("ablation", "ablation")):
            v = r[how]
            out.append(f"| {r['model']} | {label} | {v['traced']} | "
                       + " | ".join(f"{v[k]:.3f}" for k in PARTS) + f" | {v['top_is_s']:.3f} | {r['seconds']:.1f} |")
    return "\n".join(out)


QK_HEADER = ("| model | induction head (mean attention to s) | traced scores | share on (t, s − 1) | query t, any key | "
             "any query, key s − 1 | with the constant | (t, s − 1) the largest | seconds |\n" + "|---" * 9 + "|")


def qk_summary(rows: list[dict]) -> str:
    out = [QK_HEADER]
    for r in rows:
        q = r["qk"]
        out.append(f"| {r['model']} | L{q['layer']}H{q['head']} ({q['attention']:.3f}) | {q['traced']} | "
                   + " | ".join(f"{q[k]:.3f}" for k in QK_PARTS)
                   + f" | {q['seconds']:.1f} |")
    return "\n".join(out)


def main(argv=None) -> None:
    runs_main("induction_attribution", __doc__, "the planted model only", run, summary, SPEC, argv, first=HEADER)


if __name__ == "__main__":
    main()
