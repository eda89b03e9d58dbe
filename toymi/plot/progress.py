"""The grokking progress-measures figure (Nanda et al. 2023, Figure 7 style) from `progress_measures` arrays."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_FLOOR = 1e-9  # float32 cross-entropy underflows to exactly 0; a log axis shows it at this floor


def progress_figure(steps, measures: dict, key_freqs=(), p: int | None = None, title: str = "") -> Figure:
    """Losses (train, test, restricted, excluded; log scale), Gini of the Fourier components of W_E and of the
    neuron-logit map, total weight norm, fraction of neurons explained by one frequency, and the embedding's
    frequency spectrum over training, all against step.

    **Arguments:**

    - `steps`: `[checkpoint]` training steps.
    - `measures`: `toymi.analysis.modular.progress.progress_measures(...)` (arrays with the checkpoint axis first).
    - `key_freqs`: the key frequencies, marked on the spectrum.
    - `p`: the modulus; draws the chance loss log p.
    - `title`: figure title.
    """
    steps = np.asarray(steps)
    order = np.argsort(steps)
    steps = steps[order]
    m = {k: np.asarray(v)[order] for k, v in measures.items()}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    ax = axes[0, 0]
    for name, style in (("train", "-"), ("test", "-"), ("restricted", "--"), ("excluded", "--")):
        ax.plot(steps, np.maximum(m[f"{name}_loss"], _FLOOR), style, label=f"{name} loss")
    if p:
        ax.axhline(np.log(p), color="grey", lw=0.8, ls=":", label="chance (log p)")
    ax.set(yscale="log", xlabel="step", ylabel="cross-entropy", title="loss (restricted/excluded on train set)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(steps, m["gini_embed"], label="W_E")
    ax.plot(steps, m["gini_neuron_logit"], label="W_out @ W_U")
    ax.set(xlabel="step", ylabel="Gini", title="Gini of Fourier components")
    ax.legend(fontsize=8)
    ax = axes[0, 2]
    ax.plot(steps, m["weight_norm"], color="C4")
    ax.set(xlabel="step", ylabel="sum of squared parameters", title="total weight norm")
    ax = axes[1, 0]
    ax.plot(steps, m["frac_neurons_explained"], label="any frequency")
    if "key_frac_neurons_explained" in m:
        ax.plot(steps, m["key_frac_neurons_explained"], "--", label="a key frequency")
    ax.set(xlabel="step", ylabel="fraction of neurons", ylim=(-0.02, 1.02),
           title="neurons > 85% explained by one frequency")
    ax.legend(fontsize=8)
    for ax, name, label in ((axes[1, 1], "embed_spectrum", "W_E"),
                            (axes[1, 2], "neuron_logit_spectrum", "W_out @ W_U")):
        spectrum = m[name][:, 1:]  # drop the constant
        image = ax.imshow(spectrum.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                          extent=(steps[0], steps[-1], 0.5, spectrum.shape[1] + 0.5))
        for k in key_freqs:
            ax.annotate(str(k), (steps[-1], k), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=7, color="C3", annotation_clip=False)
        ax.set(xlabel="step", ylabel="frequency k", title=f"{label}: norm per frequency (key marked)")
        ax.xaxis.set_major_locator(MaxNLocator(5))  # long runs' step labels would overlap
        fig.colorbar(image, ax=ax, shrink=0.8)
    for ax in axes.flat[:4]:
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


__all__ = ["progress_figure"]
