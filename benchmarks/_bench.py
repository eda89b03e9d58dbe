"""Shared helpers of the benchmark scripts: versions, timing statistics, the JSON results file."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# Tiny versions of quick specs for the scripts' `--smoke` runs: one set per spec, so that several scripts' smoke runs
# compile the same programs and the tests' shared compilation cache serves all but the first. Induction keeps the
# task as specified (`patching_speed.induction_pairs` needs its 32 tokens and 25 positions); grokking keeps 11
# checkpoints (the progress measures' chunked check runs a full chunk of 9 and a remainder; CKA has several steps).
SMOKE_OVERRIDES = {
    "induction_quick": ["model.d_model=16", "model.d_head=4", "task.batch_size=8", "task.eval_size=16",
                        "train.steps=20", "train.eval_every=10", "train.checkpoint_every=10"],
    "grokking_quick": ["task.p=23", "model.d_model=32", "model.n_heads=2", "model.d_head=16", "model.d_mlp=64",
                       "train.steps=50", "train.eval_every=5", "train.checkpoint_every=5"],
}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("jax", "jaxlib", "equinox", "optax", "numpy", "torch", "transformer-lens"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "loadavg_1min_at_start": load}


def timed(fn) -> float:
    """Wall-clock seconds of `fn()` (which must block until its work is done)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compiled_flops(fn, *args) -> float:
    """Floating-point operations of `fn(*args)` as XLA counts them in the compiled program (after its optimisations,
    dead code removed). Non-array arguments (static tuples, flags, a module's static fields) are baked in."""
    import equinox as eqx
    import jax

    arrays, static = eqx.partition(args, eqx.is_array)
    cost = jax.jit(lambda a: fn(*eqx.combine(a, static))).lower(arrays).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


@contextlib.contextmanager
def torch_threads(n: int):
    """torch at `n` threads inside the block, its previous count restored after (a smoke run in a test process must
    not change what the process's later tests run with)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs) -> str:
    return f"{min(xs):.3g}..{max(xs):.3g}"


def write_json(name: str, payload: dict, directory: Path = RESULTS_DIR) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def runs_main(name: str, doc: str, smoke_help: str, run, summary, spec: str, argv=None, first: str = "") -> None:
    """The `main` of a benchmark whose models are trained into `--runs` (reused when there; default a temporary
    folder): parse `--smoke`, `--runs`, `--out`; print `first`; `rows = run(args, runs)`; print `summary(rows)`;
    write `OUT/name.json` with the rows, the total runtime, the machine and the versions."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    ap.add_argument("--runs", help="where the models are trained (reused when there); default a temporary folder")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if first:
        print(first, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args, Path(args.runs) if args.runs else Path(tmp))
    print("\n" + summary(rows))
    path = write_json(name, {"benchmark": name, "smoke": args.smoke, "spec": spec, "rows": rows,
                             "total_runtime_s": time.perf_counter() - start, "machine": machine(),
                             "versions": versions()}, args.out)
    print(f"wrote {path}")


def _cpu_seconds() -> tuple[float, float, float]:
    """(wall time, busy CPU seconds of the whole machine, CPU seconds of this process's threads)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


class ForeignLoad:
    """Average number of cores that *other* processes (and the hypervisor's steal) kept busy over a window.

    `with ForeignLoad() as fl: ...` then `fl.cores`. Linux only; `cores` is None elsewhere. A benchmark round with
    foreign load well above 0 was timed on a shared machine: its numbers say more about the neighbour than the code.
    """

    def __enter__(self):
        try:
            self._start = _cpu_seconds()
        except (OSError, ValueError):
            self._start = None
        self.cores = None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            w1, b1, s1 = _cpu_seconds()
            w0, b0, s0 = self._start
            self.cores = max(0.0, ((b1 - b0) - (s1 - s0)) / max(w1 - w0, 1e-9))
        return False
