"""Figures of which inputs or neurons a feature-vector model uses (`toymi.analysis.and_gates`,
`toymi.analysis.compressed_computation`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def ablation_map(effects, circuit) -> Figure:
    """Gate × input ablation effects as a heatmap (0-1), the true circuit's edges as red dots.

    **Arguments:** `effects` `[n_gates, n_features]` (`input_ablation_effects`); `circuit` the same shape, True
    where an input feeds a gate.
    """
    effects = np.asarray(effects)
    fig, ax = plt.subplots(figsize=(0.35 * effects.shape[1] + 3, 0.3 * effects.shape[0] + 2), constrained_layout=True)
    image = ax.imshow(effects, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ys, xs = np.nonzero(np.asarray(circuit))
    ax.scatter(xs, ys, s=6, color="r", label="true inputs")
    ax.set(xlabel="input ablated", ylabel="gate", title="input ablation effects")
    ax.legend(loc="upper right", fontsize=7)
    fig.colorbar(image, ax=ax, label="mean |Δ p(gate)|")
    return fig


def neuron_feature_maps(panels: dict[str, np.ndarray]) -> Figure:
    """One feature × neuron heatmap per entry of `panels` (title → `[feature, neuron]`), side by side: signed
    values on a symmetric red-blue scale, non-negative ones on viridis from 0."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), constrained_layout=True,
                             squeeze=False)
    for ax, (title, values) in zip(axes[0], panels.items()):
        values = np.asarray(values)
        limit = np.abs(values).max()
        image = ax.imshow(values, aspect="auto", cmap="RdBu" if values.min() < 0 else "viridis",
                          vmin=-limit if values.min() < 0 else 0, vmax=limit)
        ax.set(xlabel="neuron", ylabel="feature", title=title)
        fig.colorbar(image, ax=ax)
    return fig
