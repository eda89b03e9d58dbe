"""Compressed computation: which neurons serve which feature, from weights and from single-neuron ablations."""

from __future__ import annotations

import numpy as np

from toymi.analysis.compressed_computation import neuron_ablation_effects, neuron_feature_weights, neurons_used
from toymi.plot.feature_circuits import neuron_feature_maps


def compressed_computation_recipe(run, report, smoke: bool) -> None:
    model = run.model
    weights = {k: np.asarray(v) for k, v in neuron_feature_weights(model).items()}
    effects = np.asarray(neuron_ablation_effects(model))  # [feature, layer, d_mlp]
    used = np.asarray(neurons_used(effects))
    report.section("Neurons per feature", "Direct input weights W_E·W_in (feature × neuron), and the effect on each "
                   "feature's output of ablating each neuron with only that feature on. A neuron 'serves' a feature "
                   "when its effect is at least 10% of that feature's largest.")
    fig = neuron_feature_maps({"input weights, layer 0": weights["input"][0],
                               "single-neuron ablation effect, layer 0": effects[:, 0]})
    report.figure("neurons", fig, "feature × neuron weights and ablation effects")
    per_feature = used.sum(axis=(1, 2))
    per_neuron = used.sum(axis=0).ravel()
    report.numbers("neurons", {"neurons per feature (mean)": float(per_feature.mean()),
                               "features with no neuron": int((per_feature == 0).sum()),
                               "features per neuron (mean over used neurons)": float(per_neuron[per_neuron > 0].mean())
                               if (per_neuron > 0).any() else 0.0})
