"""`toymi decompose`: run the recovery benchmark and write `table.md` and `results.json` to an output directory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from toymi.errors import ConfigError


def add_parser(commands) -> None:
    parser = commands.add_parser("decompose", help="the recovery benchmark: SAEs, transcoders, baselines and SPD × "
                                                   "ground truths")
    parser.add_argument("--out", default="runs/decompose", help="output directory (default: runs/decompose)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke version: tiny truths, few steps, 2 seeds (under a minute on a CPU)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 3; 2 with --quick)")
    parser.add_argument("--truths", default="synthetic,tms",
                        help="comma-separated: synthetic, tms, compressed, compressed_out, and_gates, and_gates_out, "
                             "modular, induction (the _out truths are the MLP's output, where transcoders run too); "
                             "the SPD paper's tms_5_2, tms_40_10 (= tms), tms_5_2_id, tms_40_10_id, compressed_1l "
                             "(= compressed), compressed_2l, compressed_3l")
    parser.add_argument("--methods", default="all",
                        help="comma-separated, from: L1 SAE, TopK + AuxK, TopK (no aux), BatchTopK, JumpReLU, "
                             "transcoder, skip transcoder, PCA, FastICA, NMF, spherical k-means, random, neuron "
                             "basis, SPD (parameter decomposition: the tms, compressed, and_gates and induction "
                             "truths), or all (every method but SPD; default). E.g. all,SPD")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from toymi.decompose.benchmark import markdown_table, run_benchmark
    from toymi.decompose.settings import default_settings

    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    methods = chosen_methods(args.methods)  # before any truth is built (building TMS trains a model)
    truths = [t.strip() for t in args.truths.split(",") if t.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start, load = time.perf_counter(), os.getloadavg()
    settings = default_settings(args.quick, truths)

    def save(rows: list[dict]) -> str:
        table = markdown_table(rows)
        (out / "table.md").write_text(table)
        (out / "results.json").write_text(json.dumps({
            "quick": args.quick, "seeds": seeds, "wall_seconds": time.perf_counter() - start,
            "loadavg_at_start": load, "loadavg_now": os.getloadavg(),
            "settings": [{k: v for k, v in vars(s).items() if k not in ("truth", "parameters")}
                         | {"truth": s.truth.name, "spd": _spd_settings(s.parameters)} for s in settings],
            "rows": [r | {"summary": {k: list(v) for k, v in r["summary"].items()}} for r in rows],
        }, indent=1))
        return table

    rows = run_benchmark(settings, methods, tuple(range(seeds)), on_row=save)
    wall = time.perf_counter() - start
    table = save(rows)
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'results.json'} ({wall:.0f} s)")
    return 0


def chosen_methods(text: str) -> list[str]:
    """The method names of `--methods`, in the order given: `all` stands for every method but SPD
    (`DEFAULT_METHODS`). An unknown name, or none, is a `ConfigError`."""
    from toymi.decompose.methods import DEFAULT_METHODS, METHODS

    named = [m.strip() for m in text.split(",") if m.strip()]
    methods = list(dict.fromkeys(m for name in named for m in (DEFAULT_METHODS if name == "all" else (name,))))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}; expected some of {list(METHODS)}, or all" if unknown
                          else f"--methods {text!r} names no method")
    return methods


def _spd_settings(truth) -> dict | None:
    """A setting's SPD configuration as JSON (None where SPD does not run on it)."""
    if truth is None:
        return None
    return dataclasses.asdict(truth.config) | {"importance_coef": truth.importance_coef, "p": truth.p}
