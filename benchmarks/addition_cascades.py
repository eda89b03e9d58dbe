"""Addition runs on a large uniform test set and on sum-9 cascades of each length: the sets and numbers of
notebooks/06_addition.ipynb, for any runs (e.g. a run trained with enriched data beside the notebook's).

    toymi train tasks/addition_2l.toml --set task.enriched=0.5 --out RUN
    PYTHONPATH=. python benchmarks/addition_cascades.py --run 2l_enriched=RUN
    PYTHONPATH=. python benchmarks/addition_cascades.py --smoke    # a tiny untrained model, small sets

Test sets (seed 2023, as in the notebook): 32,768 uniform questions; for each length k < n_digits, 4,096 questions
with a carry passed through k sum-9 digits, bucketed by the cascade length they have. Accuracy: the whole answer
right under teacher forcing. Writes DIR/addition_cascades.json (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from typing import NamedTuple  # noqa: E402

from _bench import machine, versions, write_json, RESULTS_DIR  # noqa: E402

import toymi  # noqa: E402
from toymi.analysis.addition import cascade_length, cascade_questions, predict, questions  # noqa: E402
from toymi.model.registry import build_model  # noqa: E402
from toymi.tasks.addition import random_digits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE_OVERRIDES = ["model.d_model=24", "model.d_head=8", "model.d_mlp=48", "task.eval_size=64"]


class Untrained(NamedTuple):
    """What `evaluate` reads of a run, for a model at initialisation (the smoke mode: no training to compile)."""

    task: object
    model: object
    directory: Path = Path("untrained")
    model_step: int = 0


def evaluate(run, n_test: int, n_bucket: int, chunk: int) -> dict:
    task = run.task
    n = task.n_digits
    k_test, k_casc = jax.random.split(jax.random.PRNGKey(2023))
    test_a, test_b = (np.array(x) for x in random_digits(k_test, (n_test, n)))
    buckets = [cascade_questions(k, n, length, n_bucket) for length, k in enumerate(jax.random.split(k_casc, n))]
    casc_a, casc_b = np.concatenate([c[0] for c in buckets]), np.concatenate([c[1] for c in buckets])
    lengths = cascade_length(casc_a, casc_b)
    right = predict(task, run.model, questions(task, test_a, test_b), chunk)[0]
    right_c = predict(task, run.model, questions(task, casc_a, casc_b), chunk)[0].all(1)
    return {"uniform": float(right.all(1).mean()), "uniform_wrong": int((~right.all(1)).sum()), "n_test": n_test,
            "wrong_digits": (~right).sum(0).tolist(),
            "cascade": [float(right_c[lengths == k].mean()) if (lengths == k).any() else None for k in range(n)],
            "cascade_counts": [int((lengths == k).sum()) for k in range(n)], "step": run.model_step}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=[], help="NAME=RUN_DIR (repeatable)")
    ap.add_argument("--smoke", action="store_true", help="a tiny untrained model and small test sets")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if args.smoke:
        spec = toymi.Spec.load(ROOT / "tasks" / "addition_2l.toml", SMOKE_OVERRIDES)
        runs = {"smoke": Untrained(spec.build_task(), build_model(spec.model, jax.random.PRNGKey(0)))}
        sizes = (256, 64, 64)
    else:
        if not args.run:
            ap.error("give --run NAME=RUN_DIR (or --smoke)")
        runs = {name: toymi.load_run(path) for name, path in (item.split("=", 1) for item in args.run)}
        sizes = (32768, 4096, 4096)
    results = {name: evaluate(run, *sizes) for name, run in runs.items()}
    n = next(iter(runs.values())).task.n_digits
    print("| run | step | uniform (wrong of N) | " + " | ".join(f"cascade {k}" for k in range(n)) + " |")
    print("|---|---|---|" + "---|" * n)
    for name, r in results.items():
        cells = " | ".join("–" if x is None else f"{100 * x:.1f}%" for x in r["cascade"])
        print(f"| {name} | {r['step']} | {100 * r['uniform']:.3f}% ({r['uniform_wrong']} of {r['n_test']}) | {cells} |")
    path = write_json("addition_cascades", {"benchmark": "addition_cascades", "smoke": args.smoke,
                                            "runs": {k: str(v.directory) for k, v in runs.items()},
                                            "results": results, "total_runtime_s": time.perf_counter() - start,
                                            "machine": machine(), "versions": versions()}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
