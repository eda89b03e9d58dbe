"""`toymi sweep SPEC --grid ...`: train a grid of settings × seeds as one vmapped program, then draw its curves and
phase diagram."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from toymi.cli.distributed import add_distributed_arguments, start_distributed
from toymi.cli.phase import show_phase
from toymi.errors import TrainingInterrupted


def add_parser(commands) -> None:
    sweep = commands.add_parser("sweep", help="train a grid of settings × seeds as one vmapped program")
    sweep.add_argument("spec", help="the base spec, e.g. tasks/grokking.toml")
    sweep.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2,...",
                       help="values of one setting, e.g. --grid train.weight_decay=0,0.3,1 (repeatable: a product)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per grid point (base seed + 0..N-1)")
    sweep.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a base spec value (repeatable)")
    sweep.add_argument("--out", help="sweep directory (default: runs/<spec name>_sweep)")
    sweep.add_argument("--resume", action="store_true", help="continue the sweep in --out from its last checkpoint")
    sweep.add_argument("--batch-shards", type=int, default=1,
                       help="devices each member's batch is split over (the rest split the members)")
    add_distributed_arguments(sweep, "the members spread over every process's devices")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--no-plot", action="store_true", help="do not draw figures at the end")
    sweep.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import jax

    start_distributed(args)
    from toymi.experiment.sweep import Sweep
    from toymi.experiment.sweep_training import train_sweep
    from toymi.train.sharding import ensemble_mesh
    from toymi.train.state import step_of

    sweep = Sweep.from_args(args.spec, args.grid, seeds=args.seeds, overrides=args.set)
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.spec).stem}_sweep"
    n_members, n_devices = len(sweep.members), jax.device_count()
    mesh = None
    if n_devices > 1 and n_members % (n_devices // args.batch_shards) == 0:
        mesh = ensemble_mesh(args.batch_shards)
        print(f"{n_members} members over a {dict(mesh.shape)} mesh of {n_devices} {jax.devices()[0].platform} devices")
    elif n_devices > 1:
        print(f"{n_members} members on one device: not a multiple of the {n_devices // args.batch_shards} device "
              "groups")
    try:
        state = train_sweep(sweep, out, resume=args.resume, progress=not args.no_progress, mesh=mesh)
    except TrainingInterrupted as e:
        command = ["toymi", "sweep", args.spec, *[a for g in args.grid for a in ("--grid", g)], "--seeds",
                   str(args.seeds), *[a for s in args.set for a in ("--set", s)], "--out", str(out), "--resume"]
        print(f"toymi: {e}; resume with: {shlex.join(command)}", file=sys.stderr)
        return 128 + e.signal_number
    print(f"trained {n_members} members to step {step_of(state)}; sweep directory: {out}")
    if not args.no_plot and jax.process_index() == 0:
        from toymi.reports.curves import write_training_curves  # matplotlib: imported only when drawing

        print(f"wrote {write_training_curves(out)}")
        show_phase(out)
    return 0
