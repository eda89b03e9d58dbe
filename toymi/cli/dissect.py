"""`toymi dissect RUN`: the task's default dissection, written as a report directory."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    dissect = commands.add_parser("dissect", help="run the task's default dissection into RUN/dissect/report.md")
    dissect.add_argument("run", help="a run directory")
    dissect.add_argument("--out", help="report directory (default: RUN/dissect)")
    dissect.add_argument("--smoke", action="store_true", help="smallest settings (seconds): for tests")
    dissect.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from toymi.reports.dissect import dissect_run

    path = dissect_run(args.run, args.out, smoke=args.smoke)
    print(f"wrote {path}")
    return 0
