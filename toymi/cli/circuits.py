"""`toymi circuits TARGET --methods ...`: run discovery methods on a planted circuit or a trained run; write a table,
JSON scores and one drawing per method (true and found circuits overlaid where the truth is known)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser("circuits", help="circuit discovery on a planted circuit or a run: AUC, CPR, CMD, "
                                                  "drawings")
    parser.add_argument("target", help="a planted circuit (induction, copy_first or and_gate) or a run directory "
                                       "(a trained 2-layer attention-only induction model is scored against the "
                                       "circuit its head scores state; an AND-gate transformer by its gate margin, "
                                       "with the edges its task rules out; a residual MLP gets its attribution graphs "
                                       "scored against its task's circuit; other runs have no known circuit)")
    parser.add_argument("--methods", default="all",
                        help="comma-separated, from: exact, eap, eap_ig, acdc, edge_pruning, node_patching, "
                             "node_attribution (default: all)")
    parser.add_argument("--per-gate", action="store_true",
                        help="an AND-gate transformer run: also run each method once per gate and score which input "
                             "positions it finds against the gate's two (gates.md, gates.json; ACDC and edge pruning "
                             "take minutes)")
    parser.add_argument("--per-digit", action="store_true",
                        help="an addition run: also run each method once per answer digit and score which input "
                             "positions it finds against the digit's own two (digits.md, digits.json)")
    parser.add_argument("--transcoders", type=int, default=None, metavar="LATENTS",
                        help="a transformer run with an MLP: train one transcoder of LATENTS latents per MLP layer "
                             "(2,000 steps, about a minute on a CPU) and trace the attribution graphs through it "
                             "instead of the model's own neurons (sparse latents in place of dense GELU neurons; a "
                             "SoLU MLP needs this), e.g. 1024. They are saved in RUN/transcoders/ and reused: by the "
                             "next report with the same LATENTS, and by `toymi view RUN` where the model's own "
                             "neurons are not exact, until the run trains further")
    parser.add_argument("--out", default=None,
                        help="output directory (default: runs/circuits/TARGET for a planted circuit, RUN/circuits "
                             "for a run)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from toymi.reports.circuits import circuits_report

    is_run = Path(args.target).is_dir()
    out = Path(args.out or (Path(args.target) / "circuits" if is_run else f"runs/circuits/{args.target}"))
    methods = None if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    table = circuits_report(args.target, methods, out, per_gate=args.per_gate, per_digit=args.per_digit,
                            transcoders=args.transcoders)
    print(table + f"-> {out}")
    return 0
