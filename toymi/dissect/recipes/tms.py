"""Toy models of superposition: how many dimensions each feature gets and how features share them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from toymi.analysis.tms import geometry


def tms_recipe(run, report, smoke: bool) -> None:
    W = np.asarray(run.model.W)  # [d_hidden, feature]
    g = {k: np.asarray(v) for k, v in geometry(W).items()}
    importance = np.asarray(run.task.feature_importance)
    report.section("Feature geometry", f"{W.shape[1]} features in {W.shape[0]} dimensions. Dimensions per feature "
                   "= m / ‖W‖²_F; a feature's dimensionality D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² (1: a dedicated "
                   "dimension, 1/2: an antipodal pair, 2/5: a pentagon).")
    represented = g["feature_norms"] > 0.5
    report.numbers("geometry", {"dimensions per feature": float(g["dimensions_per_feature"]),
                                "features represented (‖W_i‖ > 0.5)": int(represented.sum()),
                                "D_i of represented features": np.round(g["feature_dimensionality"][represented], 3)})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    gram = W.T @ W
    limit = np.abs(gram).max()
    axes[0].imshow(gram, cmap="RdBu", vmin=-limit, vmax=limit)
    axes[0].set(title="WᵀW", xlabel="feature", ylabel="feature")
    axes[1].bar(range(W.shape[1]), g["feature_norms"], color=plt.cm.viridis(importance / importance.max()))
    axes[1].set(title="‖W_i‖ (colour: importance)", xlabel="feature")
    axes[2].scatter(range(W.shape[1]), g["feature_dimensionality"], c=importance, cmap="viridis")
    for level in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
        axes[2].axhline(level, color="0.8", lw=0.8, zorder=0)
    axes[2].set(title="feature dimensionality D_i", xlabel="feature", ylim=(-0.05, 1.1))
    report.figure("geometry", fig, "WᵀW, feature norms and feature dimensionalities")
    if W.shape[0] == 2:
        fig, ax = plt.subplots(figsize=(4.5, 4.5), constrained_layout=True)
        for i in range(W.shape[1]):
            ax.plot([0, W[0, i]], [0, W[1, i]], color=plt.cm.viridis(importance[i] / importance.max()))
            ax.annotate(str(i), W[:, i])
        ax.set(aspect="equal", title="feature directions in the 2-D bottleneck")
        report.figure("directions", fig, "each feature's column of W (colour: importance)")
