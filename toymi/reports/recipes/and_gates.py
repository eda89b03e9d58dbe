"""AND gates: which inputs each gate's output really depends on, against the sparse circuit."""

from __future__ import annotations

import numpy as np

from toymi.analysis.and_gates import circuit_agreement, input_ablation_effects
from toymi.plot.feature_circuits import ablation_map


def and_gates_recipe(run, report, smoke: bool) -> None:
    task, model = run.task, run.model
    effects = np.asarray(input_ablation_effects(task, model))
    circuit = np.asarray(task.facts()["circuit"])
    agreement = circuit_agreement(effects, circuit)
    report.section("Ablation map", "Mean change of gate k's output probability when input j is set to 0, over the "
                   "eval examples where gate k is on. The sparse circuit (dots) says only a gate's two inputs matter; "
                   "trained models may use dense circuits (Newgas 2025).")
    report.figure("ablation_map", ablation_map(effects, circuit), "input ablation effects, true circuit in red")
    per_gate = np.asarray(agreement["per_gate"])
    report.numbers("circuit", {"fraction of effect on the true circuit": float(agreement["on_circuit"]),
                               "worst gate's fraction": float(per_gate.min()),
                               "gates above 0.9": int((per_gate > 0.9).sum()), "gates": len(per_gate)})
