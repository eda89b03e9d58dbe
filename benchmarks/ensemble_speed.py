"""Ensemble throughput on this machine: N members trained as one vmapped program against N runs one after another.

    python benchmarks/ensemble_speed.py [--spec tasks/grokking_quick.toml] [--sizes 1 4 16 64] [--chunk-steps 10]
    python benchmarks/ensemble_speed.py --smoke --out DIR     # tms_quick, 1 and 2 members, 2 steps (a test runs this)

Default task: the demo's grokking setup, (a + b) mod 59 at train fraction 0.5 (1,740 pairs, full batch), 1 layer,
d_model 128, 4 heads, d_mlp 512; `--spec tasks/tms_quick.toml` is the other extreme (a 5→2 model, batch 1024), where
a step is mostly fixed overhead. Members differ by seed. Per round, one member trained alone (`make_train_chunk`)
and each ensemble size (`make_ensemble_chunk`) are timed, interleaved; "sequential" is N times the lone member's
time in the same round. Compile time is the first call's time less a steady call's, per size: a 64-member program
should compile in about the time of one member.

Prints a table and writes benchmarks/results/ensemble_speed_SPEC.json (or to `--out DIR`), SPEC the spec's name.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _bench


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--chunk-steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--spec", default="tasks/grokking_quick.toml")
    p.add_argument("--out", default=str(_bench.RESULTS_DIR), help="directory of the JSON results")
    p.add_argument("--smoke", action="store_true",
                   help="tasks/tms_quick.toml (the smallest model), 1 and 2 members, one round of 2 steps")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.chunk_steps, args.rounds, args.spec = [1, 2], 2, 1, "tasks/tms_quick.toml"
    start = time.perf_counter()
    machine = _bench.machine()

    import jax

    from toymi.experiment.spec import Spec
    from toymi.experiment.sweep import Sweep
    from toymi.experiment import make_optimizer
    from toymi.train import init_state, make_train_chunk
    from toymi.experiment.ensemble import init_ensemble
    from toymi.train.ensemble import make_ensemble_chunk

    spec_path = _bench.REPO_ROOT / args.spec
    spec = Spec.load(spec_path)
    optimizer = make_optimizer(spec.train)
    alone = init_state(spec.model, optimizer, 0)
    task = spec.build_task()
    alone_chunk = make_train_chunk(optimizer, args.chunk_steps)

    def run_alone():
        jax.block_until_ready(alone_chunk(alone, task))

    compile_s = {"1 alone": _bench.timed(run_alone)}
    steady = _bench.timed(run_alone)
    compile_s["1 alone"] -= steady
    ensembles = {}
    for n in args.sizes:
        sweep = Sweep.from_args(spec_path, [], seeds=n)
        state, tasks, ens_optimizer = init_ensemble(sweep.member_specs())
        chunk = make_ensemble_chunk(ens_optimizer, args.chunk_steps)
        ensembles[n] = (lambda c=chunk, s=state, t=tasks: jax.block_until_ready(c(s, t)))
        first = _bench.timed(ensembles[n])
        compile_s[n] = first - _bench.timed(ensembles[n])

    times = {"alone": [], **{n: [] for n in args.sizes}}
    loads = []
    for r in range(args.rounds):
        with _bench.ForeignLoad() as load:
            order = list(args.sizes) if r % 2 == 0 else list(reversed(args.sizes))
            times["alone"].append(_bench.timed(run_alone))
            for n in order:
                times[n].append(_bench.timed(ensembles[n]))
        loads.append(load.cores)

    rows = []
    for n in args.sizes:
        speedups = [n * a / e for a, e in zip(times["alone"], times[n])]
        rows.append({"members": n, "ensemble_s_per_step": _bench.median(times[n]) / args.chunk_steps,
                     "sequential_s_per_step": n * _bench.median(times["alone"]) / args.chunk_steps,
                     "speedup": _bench.median(speedups), "speedup_range": _bench.spread(speedups),
                     "compile_s": compile_s[n]})
    print(f"one member alone: {_bench.median(times['alone']) / args.chunk_steps * 1e3:.2f} ms/step, compile "
          f"{compile_s['1 alone']:.2f} s; foreign load per round (cores): {[round(x or 0, 2) for x in loads]}")
    print("| members | ensemble ms/step | N sequential runs ms/step | speedup (range) | compile s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['members']} | {row['ensemble_s_per_step'] * 1e3:.1f} | {row['sequential_s_per_step'] * 1e3:.1f}"
              f" | {row['speedup']:.2f}× ({row['speedup_range']}) | {row['compile_s']:.2f} |")
    payload = {"benchmark": "ensemble_speed", "machine": machine, "versions": _bench.versions(), "args": vars(args),
               "rows": rows, "alone_s_per_step": _bench.median(times["alone"]) / args.chunk_steps,
               "alone_compile_s": compile_s["1 alone"], "foreign_load_cores": loads,
               "total_runtime_s": time.perf_counter() - start}
    print(f"wrote {_bench.write_json('ensemble_speed_' + Path(args.spec).stem, payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
