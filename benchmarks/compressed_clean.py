"""Compressed computation with and without the label-mixing noise: the residual MLP of
`tasks/compressed_computation.toml` (random unit-norm embedding, `W_E W_Eᵀ = I + noise`) and of
`tasks/compressed_computation_clean.toml` (orthogonal embedding, `W_E W_Eᵀ = I`), each trained at its spec's settings
for a few training seeds, with its eval MSE against the naive one-neuron-per-feature solution's on the same eval set
(`toymi.tasks.compressed_computation.naive_model`). Bhagat et al. (2025) find the advantage disappears when clean.

    PYTHONPATH=. python benchmarks/compressed_clean.py --seeds 3            # spec settings (1000 steps), 3 seeds
    PYTHONPATH=. python benchmarks/compressed_clean.py --smoke              # seconds: 30 steps, 1 seed

Writes `DIR/compressed_clean.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _bench import RESULTS_DIR, machine, versions, write_json  # noqa: E402

SPECS = {"noisy": "compressed_computation", "clean": "compressed_computation_clean"}


def train_one(spec_name: str, seed: int, steps: int | None) -> dict[str, float]:
    """Train `tasks/<spec_name>.toml` with training seed `seed`; its final eval MSE and the naive solution's."""
    from toymi.experiment.spec import Spec
    from toymi.experiment import train

    overrides = [f"train.seed={seed}"]
    if steps:
        overrides += [f"train.steps={steps}", f"train.eval_every={steps}", f"train.checkpoint_every={steps}"]
    spec = Spec.load(Path(__file__).resolve().parents[1] / "tasks" / f"{spec_name}.toml", overrides)
    task = spec.build_task()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        model = train(spec, run_dir, progress=False).model
    metrics = task.evaluate(model, task.eval_batches()["eval"])
    loss, naive = float(metrics["loss"]), float(metrics["naive_loss"])
    return {"seed": seed, "loss": loss, "naive_loss": naive, "ratio": loss / naive,
            "train_seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the spec's 1000)")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seeds, args.steps = 1, 30
    start = time.perf_counter()
    results = {}
    for label, spec_name in SPECS.items():
        rows = [train_one(spec_name, seed, args.steps) for seed in range(args.seeds)]
        ratios = [r["ratio"] for r in rows]
        results[label] = {"spec": spec_name, "per_seed": rows, "ratio_mean": float(np.mean(ratios)),
                          "ratio_std": float(np.std(ratios))}
        for r in rows:
            print(f"{label} ({spec_name}) seed {r['seed']}: MSE {r['loss']:.4g}, naive {r['naive_loss']:.4g}, "
                  f"ratio {r['ratio']:.3f} ({r['train_seconds']:.0f} s)", flush=True)
        print(f"{label}: model / naive MSE {np.mean(ratios):.3f} ± {np.std(ratios):.3f}", flush=True)
    path = write_json("compressed_clean", {
        "benchmark": "compressed_clean", "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results, "total_runtime_s": time.perf_counter() - start, "machine": machine(),
        "versions": versions()}, Path(args.out))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
