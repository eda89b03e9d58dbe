"""`toymi circuits TARGET`: discovery methods run on a planted circuit or a trained run, scored against its true
edges where they are known, written as `table.md`, `scores.json` and one drawing per method (true and found circuits
overlaid; found edges alone where the truth is not known)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from toymi.circuits.forward import graph_of
from toymi.circuits.methods import METHODS, discover_all
from toymi.circuits.patching import setup
from toymi.circuits.planted import PLANTED, Planted
from toymi.circuits.scoring import faithfulness_curve, roc_auc
from toymi.circuits.targets import run_target
from toymi.errors import ConfigError
from toymi.plot import save_figure
from toymi.plot.circuits import circuit_figure


def circuits_report(target: str | Path, methods: list[str] | None, out: Path, per_gate: bool = False,
                    per_digit: bool = False, transcoders: int | None = None) -> str:
    """Run each of `methods` (names in `METHODS`; None: all of them) on `target`, a planted circuit's name (in
    `PLANTED`) or a run directory, noising, and write the report into `out`; returns the markdown table (AUC where
    the true edges are known, CPR, CMD, edges found, seconds; for a run whose task rules some edges out, how many of
    those each circuit keeps). A residual-MLP run gets its attribution graphs instead (`attribution_report`).
    An AND-gate transformer run also gets its attribution graphs scored against each gate's inputs
    (`gate_attribution_report`), an induction run the shares its graphs and ablations put on the induction
    mechanism's positions (`induction_attribution_report`): `attribution.md`, `attribution.json`. `per_gate` (an AND-gate transformer run
    only): also each method once per gate, scored against the gate's two input positions
    (`toymi.circuits.gate_positions`), written as `gates.md`, `gates.json` and `gates.png`. `per_digit` (an
    addition run only): each method once per answer digit, scored against the digit's own two positions
    (`toymi.circuits.digit_positions`), written as `digits.md` and `digits.json`. The attribution graphs of a
    transformer trace through its own neurons (ReLU or GELU) or, with `transcoders` (a latent count), through that
    many latents' transcoders per MLP layer trained on the run, which a SoLU MLP needs, or saved with it
    (`toymi.circuits.saved_replacement`: kept in `RUN/transcoders/`, reused by later reports and `toymi view`)."""
    methods = list(METHODS) if methods is None else methods
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    ruled_out: tuple[str, ...] = ()
    run = None  # a run directory's, when the target is one
    if str(target) in PLANTED:
        studies = _studies_asked(None, target, per_gate, per_digit)
        if transcoders is not None:
            raise ConfigError("--transcoders applies to a run directory; planted circuits are drawn as edge graphs")
        planted, truth_known = PLANTED[str(target)](), True
        heading = f"{target}: planted circuit, noising, {planted.ablation} ablation"
    elif Path(target).is_dir():
        from toymi.run import load_single_run

        run = load_single_run(target, "find the circuits of")
        studies = _studies_asked(run, target, per_gate, per_digit)
        if run.model.kind == "residual_mlp":  # no attention: its circuits are attribution graphs, not edge graphs
            if methods != list(METHODS) or transcoders is not None:
                raise ConfigError(f"{target} holds a residual MLP: `toymi circuits` scores its attribution graphs "
                                  "through its own neurons; edge-discovery methods (--methods) and --transcoders apply "
                                  "to transformers only")
            from toymi.reports.attribution import attribution_report

            return attribution_report(run, out)
        replacement = _graph_replacement(run, target, transcoders, studies)
        found = run_target(run)
        planted, truth_known, ruled_out = found.planted, found.truth_known, found.ruled_out
        heading = (f"{Path(target).name}, step {run.model_step}: noising, {planted.ablation} ablation\n\n"
                   f"Inputs: {found.inputs}.")
    else:
        raise ConfigError(f"unknown circuit target {str(target)!r}: it is not a run directory, and planted circuits "
                          f"are: {', '.join(PLANTED)}")
    out.mkdir(parents=True, exist_ok=True)
    table = _write(planted, truth_known, methods, out, heading, ruled_out)
    graphs = _graph_report(run)
    if graphs is not None:
        table += graphs(run, out, replacement)
    return table + "".join(study.write(run, methods, out, replacement) for study in studies)


def _graph_report(run):
    """The writer of the attribution-graph tables of a run's stated circuit (`Task.known_circuit`), or None: an
    AND-gate transformer's gates traced as graphs, and what a graph with attention frozen sees of induction."""
    if run is None:
        return None
    from toymi.reports.attribution import gate_attribution_report, induction_attribution_report

    return {"and_gates": gate_attribution_report,
            "induction": induction_attribution_report}.get(run.task.known_circuit)


def _graph_replacement(run, target, n_latents: int | None, studies: list[Study]):
    """What the run's attribution graphs trace through (`replacement_for_run`: transcoders saved with the run are
    reused; None where no graph is drawn or a SoLU MLP has no transcoders), after a one-line error for
    `--transcoders` where they would not be used."""
    from toymi.circuits.frozen_transformer import mlp_layers
    from toymi.circuits.saved_replacement import replacement_for_run

    draws = _graph_report(run) is not None or any(study.draws_graphs for study in studies)
    if n_latents is not None and not draws:
        raise ConfigError(f"--transcoders: the report on {target} draws no attribution graphs (those of an AND-gate "
                          "transformer, an induction run, or an addition run with --per-digit do)")
    if n_latents is not None and mlp_layers(run.model) == 0:
        raise ConfigError(f"--transcoders: {target} holds an attention-only model, with no MLP to replace")
    if n_latents is not None and n_latents < 1:
        raise ConfigError(f"--transcoders needs a latent count >= 1, got {n_latents}")
    return replacement_for_run(run, n_latents) if draws else None


class Study(NamedTuple):
    """A per-output study (`--per-gate`, `--per-digit`): which stated circuit (`Task.known_circuit`) it needs, the
    runs that have one, its writer (`write(run, methods, out, replacement) -> markdown`), and whether it draws
    attribution graphs (so `--transcoders` applies to it)."""

    flag: str
    circuit: str
    runs: str
    write: Callable
    draws_graphs: bool


def _studies_asked(run, target, per_gate: bool, per_digit: bool) -> list[Study]:
    """The per-output studies asked for, after a one-line error for one the target does not fit."""
    asked = [(per_gate, Study("--per-gate", "and_gates", "an AND-gate transformer run "
                              "(tasks/and_gates_transformer_quick.toml)", _write_per_gate, False)),
             (per_digit, Study("--per-digit", "addition", "an addition run (tasks/addition_quick.toml)",
                               _write_per_digit, True))]
    studies = []
    for on, study in asked:
        if on and (run is None or run.model.kind != "transformer" or run.task.known_circuit != study.circuit):
            raise ConfigError(f"{study.flag} needs {study.runs}; {target} is not one")
        studies += [study] if on else []
    return studies


def _write_per_digit(run, methods: list[str], out: Path, replacement) -> str:
    """Each method on each answer digit of an addition run (`digit_position_study`): `digits.md`, `digits.json`."""
    from toymi.circuits.digit_positions import N_DIGIT_INPUTS, digit_position_study, markdown, summary

    n = min(N_DIGIT_INPUTS, len(run.task.test) // 2)
    results = digit_position_study(run.model, run.task, methods, n_inputs=n)
    rows = summary(results)
    table = (f"\nPer answer digit (s_0 .. s_{run.task.n_digits - 1}; {n} test questions patched from the next {n}; "
             "the input split by position; each digit's own positions a_i, b_i are certain, and the digits below it "
             "too, through the carry; the digits above it never change its value, so they are judged absent):"
             f"\n\n{markdown(rows)}\n")
    graphs = _digit_graphs(run, replacement)
    if graphs:
        from toymi.circuits.digit_graphs import graph_markdown

        table += (f"\nAttribution graphs through {replacement.description}, attention frozen, the right digit's "
                  f"logit traced back on the first {GRAPH_QUESTIONS} test questions, scored the same way:\n\n"
                  f"{graph_markdown(graphs)}\n")
    else:
        from toymi.reports.attribution import NOT_DRAWN

        table += NOT_DRAWN
    (out / "digits.md").write_text(table.lstrip("\n"))
    (out / "digits.json").write_text(json.dumps({"inputs": n, "methods": rows, "graphs": graphs,
                                                 **(replacement.as_dict() if replacement else {}),
                                                 "per_digit": [r.as_dict() for r in results]}, indent=1))
    return table


GRAPH_QUESTIONS = 512


def _digit_graphs(run, replacement) -> dict:
    """Both baselines' `digit_graph_scores` through `replacement` (empty when it is None: a SoLU MLP without trained
    transcoders)."""
    from toymi.circuits.digit_graphs import digit_graphs

    if replacement is None:
        return {}
    return digit_graphs(run.model, run.task, replacement.transcoders, run.task.test.tokens[:GRAPH_QUESTIONS])


def _write_per_gate(run, methods: list[str], out: Path, replacement=None) -> str:
    """Each method on each gate of an AND-gate transformer run (`gate_position_study`): `gates.md`, `gates.json`.
    (`replacement` is unused: this study patches the model, it draws no graphs.)"""
    from toymi.circuits.gate_positions import N_GATE_INPUTS, gate_position_study, markdown, summary

    n = min(N_GATE_INPUTS, len(run.task.eval_set.x) // 2)
    results = gate_position_study(run.model, run.task, methods, n_inputs=n)
    rows = summary(results)
    table = (f"\nPer gate ({run.task.n_gates} gates; {n} eval inputs patched from the next {n}; the input split by "
             f"position; scored against each gate's two input positions):\n\n{markdown(rows)}\n")
    (out / "gates.md").write_text(table.lstrip("\n"))
    per_gate = [r.as_dict() for r in results]
    (out / "gates.json").write_text(json.dumps({"inputs": n, "methods": rows, "per_gate": per_gate}, indent=1))
    from toymi.plot.gate_positions import gate_positions_figure

    save_figure(gate_positions_figure(per_gate, f"{run.directory.name}: each gate's position scores, its two inputs "
                                                "outlined"), out / "gates.png", dpi=110)
    return table


def _write(p: Planted, truth_known: bool, methods: list[str], out: Path, heading: str,
           ruled_out: tuple[str, ...] = ()) -> str:
    s = setup(p.model, p.clean, p.corrupted, direction="noising", ablation=p.ablation)
    graph = graph_of(p.model.config)
    true = graph.edge_set(p.true_edges) if truth_known else np.zeros(graph.n_edges, bool)
    absent = graph.edge_set(ruled_out)
    rows = []
    kept_column = f" ruled-out edges kept (of {len(ruled_out)}) |" if ruled_out else ""
    lines = ["| method | AUC | CPR | CMD | edges found" + (" (true + false)" if truth_known else "") + " |"
             + kept_column + " seconds |", "|---|---|---|---|---|" + "---|" * bool(ruled_out) + "---|"]
    for found in discover_all(methods, p.model, s, p.metric):
        curve = faithfulness_curve(p.model, *s, p.metric, found.scores)
        auc = roc_auc(found.scores, true) if truth_known else None
        hits, false = int((found.circuit & true).sum()), int((found.circuit & ~true).sum())
        edges = f"{hits}/{int(true.sum())} + {false}" if truth_known else f"{false}"
        kept = f" {int((found.circuit & absent).sum())} |" if ruled_out else ""
        lines.append(f"| {found.method} | {'–' if auc is None else f'{auc:.3f}'} | {curve.cpr:.3f} | "
                     f"{curve.cmd:.3f} | {edges} |{kept} {found.seconds:.2f} |")
        rows.append({"method": found.method, "auc": auc, "cpr": curve.cpr, "cmd": curve.cmd,
                     "seconds": found.seconds, "threshold": found.threshold,
                     "scores": dict(zip(graph.edge_names(), found.scores.tolist())),
                     "circuit": [n for n, kept in zip(graph.edge_names(), found.circuit) if kept],
                     "faithfulness": curve.faithfulness.tolist()})
        title = f"{p.name}: {found.method}" + (f" (AUC {auc:.2f})" if truth_known else " (true circuit unknown)")
        figure = circuit_figure(graph, true if truth_known else None, found.circuit, title)
        save_figure(figure, out / f"circuit_{found.method}.png", dpi=110)
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(f"# {heading}\n\n" + table)
    (out / "scores.json").write_text(json.dumps({"target": p.name, "ablation": p.ablation,
                                                 "true_edges": list(p.true_edges) if truth_known else None,
                                                 "ruled_out_edges": list(ruled_out),
                                                 "methods": rows}, indent=1))
    return table
