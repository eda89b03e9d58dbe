"""Which heads carry each answer digit's own operands in an addition model (a truth judged from attention),
and how every discovery method's edge scores rank those heads' value edges (`toymi/circuits/digit_heads.py`).

    toymi train tasks/addition_quick.toml --out RUN --no-plot
    PYTHONPATH=. python benchmarks/digit_heads.py --run RUN      # the README table (every answer digit, five methods)
    PYTHONPATH=. python benchmarks/digit_heads.py --smoke        # a random 2-digit model, two methods

Per digit: the same questions, patches and metric as `toymi circuits RUN --per-digit` (128 test questions patched
from the next 128, the input split by position, the right digit's logit at the position that predicts it). A
head (of any layer) whose mean attention from that position to a_i's (b_i's) position is ≥ 0.3 is judged to carry a_i
(b_i); AUC: the method's |edge scores| on those heads' value edges from a_i's and b_i's positions against the other
heads' value edges from the same positions. Writes `DIR/digit_heads.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from toymi.circuits.digit_heads import THRESHOLD, digit_head_study, head_rows, markdown
from toymi.circuits.digit_positions import N_DIGIT_INPUTS

RESULTS = Path(__file__).parent / "results"
METHODS = "exact,eap,eap_ig,node_patching,node_attribution"  # `toymi circuits --per-digit`'s README run


def summary(rows: list[dict]) -> str:
    """README's table from the results file's rows."""
    return markdown(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained addition run (tasks/addition_quick.toml)")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="attention that makes a head judged")
    parser.add_argument("--smoke", action="store_true", help="a random 2-digit model, two methods")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.smoke:
        import jax

        from toymi.model.transformer import ModelConfig, Transformer
        from toymi.tasks.addition import Addition

        task, methods, n_inputs = Addition(n_digits=2, eval_size=16), ["exact", "eap"], 8
        args.threshold = 0.13  # between this random model's attention values (0.12-0.15), so both kinds of edge exist
        model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=16, d_vocab=12,
                                        d_vocab_out=10, n_ctx=9, act_fn="relu"), jax.random.PRNGKey(0))
    else:
        import toymi

        if not args.run:
            parser.error("--run RUN (a trained tasks/addition_quick.toml run) is needed unless --smoke")
        run = toymi.load_run(args.run)
        model, task, methods = run.model, run.task, args.methods.split(",")
        n_inputs = min(N_DIGIT_INPUTS, len(task.test) // 2)
    rows = head_rows(*digit_head_study(model, task, methods, n_inputs=n_inputs, threshold=args.threshold))
    print(summary(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "digit_heads", "inputs": n_inputs, "methods": methods, "threshold": args.threshold,
              "rows": rows, "total_runtime_s": time.perf_counter() - start}
    (args.out / f"digit_heads{'_smoke' if args.smoke else ''}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
