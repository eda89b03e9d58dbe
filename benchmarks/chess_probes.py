"""Chess board probes done right (issue 20): completed-move positions, mine/theirs classes, baselines.

    python benchmarks/chess_probes.py [--run DIR] [--spec tasks/chess_cpu.toml] [--steps N] [--fit-games 2000]
                                      [--frame relative|absolute] [--out DIR] [--smoke]

Trains `--spec` (default `tasks/chess_cpu.toml`, `--steps` overriding its `train.steps`) into `--run` unless a run
is already there, then probes its last checkpoint with `toymi.analysis.chess.chess_board_probes`: a linear
probe per layer of `resid_post` fitted on the completed-move positions of the first `--fit-games` train-split games
and scored on the held-out test games, beside a random-init control, a position one-hot, a bag of moves and the
majority class, overall, on changed squares and on non-empty squares. Prints the table and writes it to
`--out/chess_probes.json` (default benchmarks/results/).

`--smoke` trains a tiny model for 20 steps on 60 generated games (in a temporary directory) and fits the probes for
30 steps: seconds, for the test suite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _bench
import jax

import toymi
from toymi.analysis.chess import best_layer_summary, board_probe_rows, chess_board_probes
from toymi.reports.recipes.chess import HEADER
from toymi.experiment.spec import Spec
from toymi.experiment import train

SMOKE = ["task.n_games=60", "task.n_test_games=12", "task.max_plies=8", "task.batch_size=8", "model.n_layers=2",
         "model.d_model=17", "model.d_mlp=32", "model.d_head=4", "model.n_heads=4", "train.steps=20",
         "train.eval_every=10", "train.checkpoint_every=20", "train.warmup_steps=0"]


def load_or_train(spec_path: Path, run_dir: Path, overrides: list[str]) -> toymi.Run:
    if not (run_dir / "spec.toml").exists():
        print(f"training {spec_path} ({' '.join(overrides) or 'as specified'}) into {run_dir} ...", flush=True)
        train(Spec.load(spec_path, overrides), run_dir, progress=False)
    return toymi.load_run(run_dir)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=_bench.REPO_ROOT / "runs" / "chess_probes_cpu")
    parser.add_argument("--spec", type=Path, default=_bench.REPO_ROOT / "tasks" / "chess_cpu.toml")
    parser.add_argument("--steps", type=int, default=None, help="override the spec's train.steps")
    parser.add_argument("--fit-games", type=int, default=2000)
    parser.add_argument("--probe-steps", type=int, default=1500)
    parser.add_argument("--frame", choices=("relative", "absolute"), default="relative")
    parser.add_argument("--out", type=Path, default=_bench.RESULTS_DIR)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tmp = None
    overrides = [] if args.steps is None else [f"train.steps={args.steps}"]
    if args.smoke:
        tmp = tempfile.TemporaryDirectory(prefix="toymi-chess-probes-")
        args.run = Path(tmp.name) / "run"
        overrides = [*SMOKE, f"task.cache_dir={Path(tmp.name) / 'games'}"]
        args.fit_games, args.probe_steps = 48, 30
    try:
        run = load_or_train(args.spec, args.run, overrides)
        train_games = {k: v[:args.fit_games] for k, v in run.task.games("train").items()}
        probe_start = time.perf_counter()
        out = chess_board_probes(run.model, train_games, run.task.games("test"), frame=args.frame,
                                 control_key=jax.random.PRNGKey(1), steps=args.probe_steps, batch_size=512,
                                 key=jax.random.PRNGKey(0))
        probe_seconds = time.perf_counter() - probe_start
    finally:
        if tmp is not None:
            tmp.cleanup()
    rows = board_probe_rows(out)
    print(f"{run.spec.task['name']} run {args.run} at step {run.steps[-1]}; frame {args.frame}; {out['counts']}")
    print(" | ".join(HEADER))
    for row in rows:
        print(" | ".join([row[0]] + ["" if v is None else f"{100 * v:.2f}%" for v in row[1:]]))
    summary = best_layer_summary(out)
    print("best layer:", {k: round(v, 4) for k, v in summary.items()})
    payload = {"benchmark": "chess_probes", "smoke": args.smoke, "run": str(args.run), "step": run.steps[-1],
               "spec": run.spec.to_dict(), "frame": args.frame,
               "fit_games": args.fit_games, "probe_steps": args.probe_steps, "counts": out["counts"],
               "header": HEADER, "rows": rows, "best_layer": summary, "probe_seconds": probe_seconds,
               "total_runtime_s": time.perf_counter() - start, "machine": _bench.machine(),
               "versions": _bench.versions()}
    print(f"results: {_bench.write_json('chess_probes', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
