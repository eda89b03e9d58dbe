"""Data generation does not dominate training: on-device sampling vs the full training step, per sampled task.

    python benchmarks/sampler_speed.py [--tasks addition induction] [--chunk-steps 50] [--rounds 7]
    python benchmarks/sampler_speed.py --smoke --out DIR    # seconds: one task, 2 steps per chunk, 1 round

For each task named (a key of `toymi.tasks.TASKS` with a spec at `tasks/<name>_quick.toml`; add a newly registered
sampled task by name), in the same process and interleaved in rounds (order reversed every other round):

- sampling only: `chunk_steps` calls of `task.train_batch(key)` inside one jitted `lax.scan`, each batch reduced
  to a scalar carried to the next step so XLA cannot drop the work;
- full step: `toymi.train.make_train_chunk(optimizer, chunk_steps)`, which samples the same batches and runs
  forward, backward and AdamW on the spec's model.

The report gives steps/s of both (medians over rounds) and the median per-round ratio of sampling time to
training-step time: the share of a step that generating its data would cost if it were not overlapped. Each round
also records how many cores other processes kept busy (`foreign_load`).

Prints a report and writes the same numbers to `DIR/sampler_speed.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import time

import _bench


SMOKE_TASK = "tms"  # the quickest to compile: the smoke run times its sampling and training step as any other


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+",
                   default=["addition", "induction", "chess", "tms", "compressed_computation", "and_gates"],
                   help="registered task names, each with a spec at tasks/<name>_quick.toml")
    p.add_argument("--chunk-steps", type=int, default=50, help="steps per compiled lax.scan")
    p.add_argument("--rounds", type=int, default=7, help="interleaved measurement rounds (median taken)")
    p.add_argument("--out", default=str(_bench.RESULTS_DIR), help="where sampler_speed.json goes")
    p.add_argument("--smoke", action="store_true", help=f"{SMOKE_TASK} only, 2 steps per chunk, 1 round")
    args = p.parse_args(argv)
    if args.smoke:
        args.tasks, args.chunk_steps, args.rounds = [SMOKE_TASK], 2, 1
    return args


def sampling_chunk(n_steps: int):
    """A compiled `(task, key) -> (key, checksum)` drawing `n_steps` training batches, as the training step does."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    @eqx.filter_jit
    def chunk(task, key):
        def body(carry, _):
            key, total = carry
            key, batch_key = jax.random.split(key)
            batch = task.train_batch(batch_key)
            # Every leaf feeds the carry, so none of the sampling is dead code.
            total = total + sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(batch))
            return (key, total), None

        (key, total), _ = jax.lax.scan(body, (key, jnp.float32(0)), length=n_steps)
        return key, total

    return chunk


def measure_task(name: str, args) -> dict:
    import jax

    from toymi.experiment.spec import Spec
    from toymi.tasks import TASKS
    from toymi.experiment import make_optimizer
    from toymi.train import init_state, make_train_chunk

    if name not in TASKS:
        raise SystemExit(f"unknown task {name!r}; registered: {', '.join(sorted(TASKS))}")
    path = _bench.REPO_ROOT / "tasks" / f"{name}_quick.toml"
    if not path.is_file():
        raise SystemExit(f"task {name!r} has no spec at {path.relative_to(_bench.REPO_ROOT)}")
    spec = Spec.load(path)
    task = spec.build_task()
    optimizer = make_optimizer(spec.train)
    state = init_state(spec.model, optimizer, spec.train.seed)
    n = args.chunk_steps
    sample = sampling_chunk(n)
    train_chunk = make_train_chunk(optimizer, n)

    t0 = time.perf_counter()
    jax.block_until_ready(sample(task, state.key))
    compile_sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(train_chunk(state, task))
    compile_train_s = time.perf_counter() - t0

    def run_sample():
        jax.block_until_ready(sample(task, state.key))

    def run_train():
        jax.block_until_ready(train_chunk(state, task))  # always from the same state: identical work each round

    rows = []
    for r in range(args.rounds):
        order = [("sample", run_sample), ("train", run_train)]
        if r % 2:
            order.reverse()
        row = {}
        with _bench.ForeignLoad() as fl:
            for label, fn in order:
                row[f"{label}_s"] = _bench.timed(fn)
        row["foreign_load_cores"] = fl.cores
        row["ratio"] = row["sample_s"] / row["train_s"]
        rows.append(row)

    batch = task.train_batch(jax.random.PRNGKey(0))
    sample_s = _bench.median([r["sample_s"] for r in rows])
    train_s = _bench.median([r["train_s"] for r in rows])
    return {
        "spec": str(path.relative_to(_bench.REPO_ROOT)),
        "task": dict(spec.task),
        "batch_shape": list(jax.tree.leaves(batch)[0].shape),  # tokens, or feature vectors
        "compile_plus_first_chunk_s": {"sample": compile_sample_s, "train": compile_train_s},
        "sample_steps_per_s": n / sample_s,
        "train_steps_per_s": n / train_s,
        "sample_over_train_time": _bench.median([r["ratio"] for r in rows]),
        "ratio_range": [min(r["ratio"] for r in rows), max(r["ratio"] for r in rows)],
        "rounds": rows,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    machine = _bench.machine()
    results = {
        "benchmark": "sampler_speed",
        "versions": _bench.versions(),
        "machine": machine,
        "config": {"chunk_steps": args.chunk_steps, "rounds": args.rounds, "smoke": args.smoke},
        "tasks": {name: measure_task(name, args) for name in args.tasks},
    }
    results["total_runtime_s"] = time.perf_counter() - t_start
    report(results)
    print(f"\nwrote {_bench.write_json('sampler_speed', results, args.out)}")
    return results


def report(r: dict) -> None:
    m, c = r["machine"], r["config"]
    print(f"sampler_speed: on-device sampling vs full training step, {c['chunk_steps']} steps per lax.scan, "
          f"medians of {c['rounds']} interleaved rounds")
    print(f"machine: {m['cpu']}, {m['cpu_count']} cores; 1-min load average {m['loadavg_1min_at_start']:.2f} at start")
    print(f"{'task':<14}{'batch':>12}{'sample steps/s':>16}{'train steps/s':>15}{'sample/train':>14}   range")
    for name, t in r["tasks"].items():
        lo, hi = t["ratio_range"]
        print(f"{name:<14}{'x'.join(map(str, t['batch_shape'])):>12}{t['sample_steps_per_s']:>16.1f}"
              f"{t['train_steps_per_s']:>15.1f}{t['sample_over_train_time']:>13.1%}   {lo:.1%}..{hi:.1%}")
    loads = [row["foreign_load_cores"] for t in r["tasks"].values() for row in t["rounds"]
             if row["foreign_load_cores"] is not None]
    if loads:
        print(f"machine sharing: other processes kept {_bench.median(loads):.2f} cores busy in the median round "
              f"(max {max(loads):.2f}); ratios are timed in the same round, so both sides share the slowdown")
    print(f"total runtime {r['total_runtime_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
