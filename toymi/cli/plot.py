"""`toymi plot RUN`: draw a run's training curves (and a sweep's phase diagram) into RUN/figures/."""

from __future__ import annotations

import argparse
from pathlib import Path

from toymi.cli.phase import show_phase


def add_parser(commands) -> None:
    plot = commands.add_parser("plot", help="draw a run's training curves into RUN/figures/")
    plot.add_argument("run", help="a run directory")
    plot.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from toymi.reports.curves import write_training_curves

    print(f"wrote {write_training_curves(Path(args.run))}")
    if (Path(args.run) / "sweep.toml").exists():
        show_phase(Path(args.run))
    return 0
