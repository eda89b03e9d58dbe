"""Figures of a toy model of superposition's geometry (`toymi.analysis.tms`), from its `W` and the numbers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def tms_geometry_figure(W, feature_norms, feature_dimensionality, importance) -> Figure:
    """Three panels: `WᵀW`; each feature's norm ‖W_i‖; each feature's dimensionality D_i against the levels of the
    uniform polytopes (1, 3/4, 2/3, 1/2, 2/5, 3/8). Features coloured by importance.

    **Arguments:** `W` `[d_hidden, feature]`; `feature_norms`, `feature_dimensionality`, `importance` `[feature]`.
    """
    W, importance = np.asarray(W), np.asarray(importance)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    gram = W.T @ W
    limit = np.abs(gram).max()
    axes[0].imshow(gram, cmap="RdBu", vmin=-limit, vmax=limit)
    axes[0].set(title="WᵀW", xlabel="feature", ylabel="feature")
    axes[1].bar(range(W.shape[1]), np.asarray(feature_norms), color=plt.cm.viridis(importance / importance.max()))
    axes[1].set(title="‖W_i‖ (colour: importance)", xlabel="feature")
    axes[2].scatter(range(W.shape[1]), np.asarray(feature_dimensionality), c=importance, cmap="viridis")
    for level in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
        axes[2].axhline(level, color="0.8", lw=0.8, zorder=0)
    axes[2].set(title="feature dimensionality D_i", xlabel="feature", ylim=(-0.05, 1.1))
    return fig


def feature_directions_2d(W, importance) -> Figure:
    """Each feature's column of a `[2, feature]` `W` as an arrow from the origin, numbered, coloured by importance."""
    W, importance = np.asarray(W), np.asarray(importance)
    if W.shape[0] != 2:
        raise ValueError(f"feature directions are drawn for a 2-D bottleneck; W has shape {W.shape}")
    fig, ax = plt.subplots(figsize=(4.5, 4.5), constrained_layout=True)
    for i in range(W.shape[1]):
        ax.plot([0, W[0, i]], [0, W[1, i]], color=plt.cm.viridis(importance[i] / importance.max()))
        ax.annotate(str(i), W[:, i])
    ax.set(aspect="equal", title="feature directions in the 2-D bottleneck")
    return fig
