"""`toymi circuits TARGET --methods ...`: run discovery methods on a planted circuit; write a table, JSON scores and
one drawing per method (true and found circuits overlaid)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from toymi.errors import ConfigError


def add_parser(commands) -> None:
    parser = commands.add_parser("circuits", help="circuit discovery on a planted circuit: AUC, CPR, CMD, drawings")
    parser.add_argument("target", help="a planted circuit: induction, copy_first or and_gate")
    parser.add_argument("--methods", default="all",
                        help="comma-separated, from: exact, eap, eap_ig, acdc, edge_pruning, node_patching, "
                             "node_attribution (default: all)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/circuits/TARGET)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")

    from toymi.circuits.forward import graph_of
    from toymi.circuits.methods import METHODS, discover
    from toymi.circuits.patching import setup
    from toymi.circuits.planted import PLANTED
    from toymi.circuits.scoring import faithfulness_curve, roc_auc
    from toymi.plot import save_figure
    from toymi.plot.circuits import circuit_figure

    if args.target not in PLANTED:
        raise ConfigError(f"unknown circuit target {args.target!r}; planted circuits are: {', '.join(PLANTED)} "
                          f"(trained runs are not supported yet)")
    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    out = Path(args.out or f"runs/circuits/{args.target}")
    out.mkdir(parents=True, exist_ok=True)
    p = PLANTED[args.target]()
    s = setup(p.model, p.clean, p.corrupted, direction="noising", ablation=p.ablation)
    graph = graph_of(p.model.config)
    true = graph.edge_set(p.true_edges)
    rows, lines = [], ["| method | AUC | CPR | CMD | edges found (true + false) | seconds |", "|---|---|---|---|---|---|"]
    for method in methods:
        found = discover(method, p.model, s, p.metric)
        curve = faithfulness_curve(p.model, *s, p.metric, found.scores)
        auc = roc_auc(found.scores, true)
        hits, false = int((found.circuit & true).sum()), int((found.circuit & ~true).sum())
        lines.append(f"| {method} | {auc:.3f} | {curve.cpr:.3f} | {curve.cmd:.3f} | {hits}/{int(true.sum())} + "
                     f"{false} | {found.seconds:.2f} |")
        rows.append({"method": method, "auc": auc, "cpr": curve.cpr, "cmd": curve.cmd, "seconds": found.seconds,
                     "threshold": found.threshold, "scores": dict(zip(graph.edge_names(), found.scores.tolist())),
                     "circuit": [n for n, kept in zip(graph.edge_names(), found.circuit) if kept],
                     "faithfulness": curve.faithfulness.tolist()})
        fig = circuit_figure(graph, true, found.circuit, f"{args.target}: {method} (AUC {auc:.2f})")
        save_figure(fig, out / f"circuit_{method}.png", dpi=110)
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(f"# {args.target}: noising, {p.ablation} ablation\n\n" + table)
    (out / "scores.json").write_text(json.dumps({"target": args.target, "ablation": p.ablation,
                                                 "true_edges": list(p.true_edges), "methods": rows}, indent=1))
    print(table + f"-> {out}")
    return 0
