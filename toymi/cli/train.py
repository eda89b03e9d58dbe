"""`toymi train SPEC`: train a spec into a run directory, then draw its training curves."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from toymi.cli.distributed import add_distributed_arguments, start_distributed
from toymi.errors import TrainingInterrupted


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="train a spec into a run directory")
    train.add_argument("spec", help="a TOML spec, e.g. tasks/grokking_quick.toml")
    train.add_argument("--out", help="run directory (default: runs/<spec name>)")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a spec value, e.g. --set train.steps=1000 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last intact "
                       "checkpoint (or start it, if an interruption left nothing to continue)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-plot", action="store_true", help="do not draw figures at the end")
    add_distributed_arguments(train, "train data-parallel over every process's devices")
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import jax

    start_distributed(args)
    from toymi.experiment.spec import Spec
    from toymi.experiment import train
    from toymi.train.sharding import ensemble_mesh
    from toymi.train.state import step_of

    spec = Spec.load(args.spec, args.set)
    out = Path(args.out) if args.out else Path("runs") / Path(args.spec).stem
    mesh = ensemble_mesh(jax.device_count()) if args.distributed else None  # data-parallel over every device
    if mesh is not None:
        print(f"data-parallel over {jax.device_count()} {jax.devices()[0].platform} devices in "
              f"{jax.process_count()} processes")
    try:
        state = train(spec, out, resume=args.resume, progress=not args.no_progress, mesh=mesh)
    except TrainingInterrupted as e:
        command = ["toymi", "train", args.spec, "--out", str(out), *[a for s in args.set for a in ("--set", s)],
                   "--resume"]
        print(f"toymi: {e}; resume with: {shlex.join(command)}", file=sys.stderr)
        return 128 + e.signal_number
    print(f"trained to step {step_of(state)}; run directory: {out}")
    if not args.no_plot and jax.process_index() == 0:
        from toymi.reports.curves import write_training_curves  # matplotlib: imported only when drawing

        print(f"wrote {write_training_curves(out)}")
    return 0
