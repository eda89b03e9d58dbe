"""The `toymi` command: `main` and the parser, assembled from one thin module per subcommand (`train`, `sweep`,
`plot`, `phase`, `dissect`, `view`, `decompose`, `circuits`), each with `add_parser(commands)` and `run(args)`.

Errors in the user's input or files (`ToymiError`) print one line and exit with 2 (`--debug` adds the traceback).
Anything else is a bug in toymi: it keeps its traceback and the exit status 1 of an uncaught exception.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback

from toymi.cli import circuits, decompose, dissect, phase, plot, sweep, train, view
from toymi.errors import ToymiError

SUBCOMMANDS = (train, plot, sweep, dissect, view, phase, decompose, circuits)  # the order `toymi --help` lists


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toymi", description="Train toy models on synthetic tasks and dissect them.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors in your input too")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        # Training handles SIGINT/SIGTERM itself (it stops at a safe point and says how to resume); this is a signal
        # before the training loop started or after it ended, where nothing is half-written.
        print("toymi: stopped by a signal outside the training loop (nothing half-written); run the command again, "
              "with --resume if a run directory was made", file=sys.stderr)
        return 130
    except ToymiError as e:
        # Errors in the user's input or files: one clear line (the traceback only with --debug).
        if args.debug:
            traceback.print_exc()
        print(f"toymi: error: {e}", file=sys.stderr)
        return 2
    except Exception:
        # A bug in toymi, whatever its type (a KeyError or ValueError here is not the user's): say so, and let it
        # propagate so that its traceback is shown and the process exits with 1.
        print("toymi: internal error, a bug in toymi rather than in your input (traceback below; please report it)",
              file=sys.stderr)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
