"""Fault injection: kill `toymi train` at random moments (start-up, mid-chunk, during checkpoint writes) with SIGKILL,
and stop it with SIGTERM and SIGINT, then `--resume` each run to the end and compare it with an uninterrupted run:
every checkpoint bit for bit, every metrics row (but `elapsed_s`) equal, no duplicated or lost rows, no directory
left that blocks the next command.

    python benchmarks/fault_injection.py            # 20 SIGKILLs + 3 SIGTERMs + 3 SIGINTs
    python benchmarks/fault_injection.py --smoke    # 3 kills (seconds; the test suite runs this)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC_SETTINGS = ["--set", "task.p=23", "--set", "model.d_model=32", "--set", "model.d_mlp=64", "--set",
                 "model.n_heads=2", "--set", "model.d_head=16", "--set", "train.steps=60", "--set",
                 "train.eval_every=10", "--set", "train.checkpoint_every=20"]
ROOT = Path(__file__).resolve().parents[1]


def command(out: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "toymi.cli", "train", str(ROOT / "tasks" / "grokking_quick.toml"), "--out",
            str(out), *SPEC_SETTINGS, "--no-progress", "--no-plot", *(["--resume"] if resume else [])]


def run(out: Path, resume: bool = False, kill: tuple[int, float] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kill is None:
        return subprocess.run(command(out, resume), env=env, capture_output=True, text=True, timeout=600)
    signum, after = kill
    proc = subprocess.Popen(command(out, resume), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=after)  # it ended before the signal was due: there is nothing to interrupt
    except subprocess.TimeoutExpired:
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def snapshot(out: Path) -> tuple[list[dict], dict[str, bytes]]:
    """Metrics rows without timings, and the restored arrays of every checkpoint (as bytes)."""
    import jax
    import numpy as np

    from toymi.run import load_run

    rows = [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]
    run_ = load_run(out)
    arrays = {f"{s}/{i}": np.asarray(x).tobytes() for s in run_.steps
              for i, x in enumerate(jax.tree.leaves(run_.state(s)))}
    run_.close()
    return rows, arrays


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="3 interruptions instead of 26")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    kills = [(signal.SIGKILL, n) for n in range(3 if args.smoke else 20)]
    if not args.smoke:
        kills += [(signal.SIGTERM, n) for n in range(3)] + [(signal.SIGINT, n) for n in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        reference = run(tmp / "reference")
        assert reference.returncode == 0, reference.stderr
        full = time.perf_counter() - began
        expected = snapshot(tmp / "reference")
        results = {"stuck": 0, "mismatched": 0, "tracebacks": 0, "resumes": 0, "interruptions": 0,
                   "at_start_up": 0, "late": 0}
        for i, (signum, _) in enumerate(kills):
            out = tmp / f"run{i}"
            for _attempt in range(5):  # a signal that came after the run had ended interrupted nothing: draw again
                after = rng.uniform(0.2, full)  # from start-up to the end (mid-chunk, during saves)
                began = time.perf_counter()
                first = run(out, kill=(signum, after))
                if first.returncode != 0:
                    break
                results["late"] += 1
                # A run can end sooner than the reference (which filled the compilation cache, when one is on): draw
                # the next signals within the length of a run that finished, so they land in the run.
                full = min(full, time.perf_counter() - began)
                shutil.rmtree(out)
            started = _checkpoints(out)
            second = run(out, resume=True)
            results["interruptions"] += first.returncode != 0
            results["at_start_up"] += first.returncode != 0 and started == 0
            results["resumes"] += 1
            results["tracebacks"] += "Traceback" in first.stderr
            if second.returncode != 0:
                results["stuck"] += 1
                print(f"{signal.Signals(signum).name} at {after:.1f}s: resume failed: {second.stderr.strip()[-300:]}")
                continue
            same = snapshot(out) == expected
            results["mismatched"] += not same
            last = (first.stderr.strip().splitlines() or [""])[-1]
            print(f"{signal.Signals(signum).name:7} at {after:5.1f}s ({started} checkpoints on disk): rc "
                  f"{first.returncode:4}, resumed {'bit-exact' if same else 'DIFFERENT'}; {last[:150]}", flush=True)
    print(json.dumps(results))
    return 0 if results["stuck"] == results["mismatched"] == 0 else 1


def _checkpoints(out: Path) -> int:
    """Finished checkpoints left by the interrupted run (0: it was stopped during start-up)."""
    return len([p for p in (out / "checkpoints").glob("*") if p.name.isdigit()]) if (out / "checkpoints").exists() \
        else 0


if __name__ == "__main__":
    sys.exit(main())
