"""`toymi phase SWEEP`: a sweep's phase diagram, steps until a metric drops below a value (or its final value)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    phase = commands.add_parser("phase", help="draw a sweep's phase diagram: steps until a metric drops below a value")
    phase.add_argument("run", help="a sweep directory")
    phase.add_argument("--x", help="grid setting along x (default: the sweep's first)")
    phase.add_argument("--y", help="grid setting along y (default: the sweep's second)")
    phase.add_argument("--metric", help="a logged metric (default: test_loss)")
    phase.add_argument("--below", type=float, help="threshold (default: the task's, 0.1 for cross-entropy tasks, "
                       "Nanda et al.'s grokked; tasks without one, TMS and compressed computation, show final values)")
    phase.set_defaults(func=run)


def show_phase(run_dir: Path, x: str | None = None, y: str | None = None, metric: str | None = None,
               below: float | None = None) -> None:
    """Draw the phase diagram (`toymi.reports.phase`) and print its summary and where it was written."""
    from toymi.reports.phase import phase_report

    report = phase_report(run_dir, x, y, metric, below)
    print("\n".join(report.lines))
    if report.path is not None:
        print(f"wrote {report.path}")


def run(args: argparse.Namespace) -> int:
    show_phase(Path(args.run), args.x, args.y, args.metric, args.below)
    return 0
