"""Accelerator timings: the full Nanda et al. grokking run (40k full-batch epochs) wall time including compile, and
a many-member grokking sweep's throughput. Run on the machine with the accelerator:

    python benchmarks/gpu_timings.py --out benchmarks/results/gpu_timings.json

Wall times include everything the command does (compile, evaluation every 100 steps, checkpoints every 1,000).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def timed(command: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - began
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def last_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--work", default="/tmp/toymi_gpu")
    parser.add_argument("--sweep-steps", type=int, default=2000)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    import jax

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    toymi = [sys.executable, "-m", "toymi.cli"]
    results = {"device": str(jax.devices()[0]), "jax": jax.__version__}
    if not args.skip_full:
        seconds, _ = timed([*toymi, "train", "tasks/grokking.toml", "--out", str(work / "grokking"), "--no-progress",
                            "--no-plot"])
        final = last_metrics(work / "grokking")
        results["grokking_full"] = {"wall_s": round(seconds, 1), "steps": final["step"],
                                    "test_loss": final["test_loss"], "test_accuracy": final["test_accuracy"]}
        print(results["grokking_full"], flush=True)
    seeds = args.members // 8
    fractions = "0.25,0.3,0.4,0.5,0.6,0.7,0.8,0.95"
    seconds, out = timed([*toymi, "sweep", "tasks/grokking.toml", "--grid", f"task.frac_train={fractions}",
                          "--seeds", str(seeds), "--set", f"train.steps={args.sweep_steps}",
                          "--set", f"train.checkpoint_every={args.sweep_steps}", "--out", str(work / "sweep"),
                          "--no-progress"])
    results["grokking_sweep"] = {"members": args.members, "steps": args.sweep_steps, "wall_s": round(seconds, 1),
                                 "member_steps_per_s": round(args.members * args.sweep_steps / seconds, 1),
                                 "phase": out.strip().splitlines()[-10:]}
    print(results["grokking_sweep"], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
