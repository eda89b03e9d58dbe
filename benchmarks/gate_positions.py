"""Which input positions each AND gate's circuit reads: every discovery method, per gate, on the hand-written solution
(control) and on a trained AND-gate transformer, scored against the gate's two input positions.

    toymi train tasks/and_gates_transformer_quick.toml --out RUN --no-plot
    PYTHONPATH=. python benchmarks/gate_positions.py --run RUN      # the README table (all 45 gates, every method)
    PYTHONPATH=. python benchmarks/gate_positions.py --smoke        # the solution of a 6-feature task, three methods

Per gate: that gate's margin alone, the input split by position (`input[p]`), 128 eval inputs patched from the next
128 (noising). Position AUC: each position's largest |edge score| against {a, b}; top two: the two highest positions
are exactly {a, b}; certain-zero edges kept: edges that patching cannot change (readout position, and in the last
layer queries, MLP and logits from other positions) in the method's circuit. See toymi/circuits/gate_positions.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from toymi.circuits.gate_positions import COLUMNS, N_GATE_INPUTS, gate_position_study, row_cells
from toymi.circuits.gate_positions import summary as method_summary
from toymi.circuits.methods import METHODS
from toymi.circuits.planted import and_gates_solution

RESULTS = Path(__file__).parent / "results"
def summary(rows: list[dict]) -> str:
    """README's table from the results file's rows: `toymi circuits RUN --per-gate`'s with a model column."""
    header = f"| model | {COLUMNS}\n" + "|---" * (COLUMNS.count("|") + 1) + "|"
    return "\n".join([header] + [f"| {r['model']} | {row_cells(r)}" for r in rows])


def study(name: str, model, task, methods, gates, n_inputs) -> tuple[list[dict], list[dict]]:
    results = gate_position_study(model, task, methods, n_inputs=n_inputs, gates=gates)
    per_gate = [{"model": name, **r.as_dict()} for r in results]
    return [{"model": name, **row} for row in method_summary(results)], per_gate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained AND-gate transformer run (tasks/and_gates_transformer_quick.toml)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--inputs", type=int, default=N_GATE_INPUTS, help="clean eval inputs (as many corrupted)")
    parser.add_argument("--smoke", action="store_true", help="the solution of a 6-feature task, three methods")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--figure", type=Path, default=Path(__file__).parents[1] / "docs" / "images" /
                        "circuits_gate_positions.png", help="the trained model's per-gate heatmaps (smoke: in --out)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    methods = ["exact", "eap", "acdc"] if args.smoke else args.methods.split(",")
    if args.smoke:
        from toymi.tasks.and_gates import AndGates

        task, gates, n_inputs = AndGates(n_features=6, feature_probability=0.5, n_eval=64), [0, 1, 2], 32
        models = [("solution (control)", and_gates_solution(task))]
    else:
        import toymi

        if not args.run:
            parser.error("--run RUN (a trained tasks/and_gates_transformer_quick.toml run) is needed unless --smoke")
        run = toymi.load_run(args.run)
        task, gates, n_inputs = run.task, None, args.inputs
        models = [("solution (control)", and_gates_solution(task)), (f"trained ({Path(args.run).name})", run.model)]
    rows, per_gate = [], []
    for name, model in models:
        summary_rows, gate_rows = study(name, model, task, methods, gates, n_inputs)
        rows += summary_rows
        per_gate += gate_rows
    table = summary(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "gate_positions", "inputs": n_inputs, "methods": methods, "rows": rows,
              "per_gate": per_gate, "total_runtime_s": time.perf_counter() - start}
    (args.out / f"gate_positions{'_smoke' if args.smoke else ''}.json").write_text(json.dumps(report, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    from toymi.plot import save_figure
    from toymi.plot.gate_positions import gate_positions_figure

    last = models[-1][0]  # the trained model (the solution in --smoke)
    figure = args.out / "gate_positions_smoke.png" if args.smoke else args.figure
    save_figure(gate_positions_figure([r for r in per_gate if r["model"] == last],
                                      f"{last}: each gate's position scores, its two inputs outlined"), figure, dpi=110)


if __name__ == "__main__":
    main()
