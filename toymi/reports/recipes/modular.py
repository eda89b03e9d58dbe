"""Modular addition (grokking): key frequencies and the Nanda et al. progress measures over every checkpoint."""

from __future__ import annotations

import numpy as np

from toymi.analysis.modular.key_frequencies import neuron_key_frequencies
from toymi.analysis.modular.progress import progress_measures
from toymi.plot.progress import progress_figure


def modular_recipe(run, report, smoke: bool) -> None:
    task = run.task
    if task.op != "+":
        report.section("Progress measures", f"Not computed: the Fourier measures assume a + b, this run is "
                       f"a {task.op} b.")
        return
    steps = run.steps if not smoke else run.steps[-2:]
    keys = neuron_key_frequencies(run.model, task)
    measures = {k: np.asarray(v) for k, v in progress_measures(run.checkpoint_series(steps), task, keys,
                                                               chunk_size=8).items()}
    report.section("Key frequencies and progress measures", "Key frequencies: the frequencies that explain the "
                   "final model's neurons (a neuron is explained when one frequency's 2-D Fourier terms carry > 85% "
                   "of its variance over all (a, b)). Restricted loss keeps only the logits' components along "
                   "cos/sin(w_k(a+b)) for the key frequencies; excluded loss removes them (train set, Nanda et al.).")
    report.figure("progress", progress_figure(np.asarray(steps), measures, keys, p=task.p),
                  "losses, restricted/excluded loss, Gini, weight norm, neurons explained and spectra against step")
    last = {k: float(v[-1]) for k, v in measures.items() if v.ndim == 1}
    report.numbers("final", {"key frequencies": [int(k) for k in keys],
                             "fraction of neurons explained by one frequency": last["frac_neurons_explained"],
                             "restricted loss": last["restricted_loss"], "excluded loss": last["excluded_loss"],
                             "train loss": last["train_loss"], "test loss": last["test_loss"],
                             "Gini of W_E's Fourier components": last["gini_embed"],
                             "Gini of the neuron-logit map": last["gini_neuron_logit"],
                             "total weight norm": last["weight_norm"]})
    report.metrics["series"] = {"steps": list(steps), **{k: v.tolist() for k, v in measures.items() if v.ndim == 1}}
