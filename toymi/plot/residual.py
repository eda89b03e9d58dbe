"""Residual-stream figures from arrays: logit lens, direct logit attribution, PCA scatter, CKA matrix."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def logit_lens_heatmap(values, layer_labels: Sequence[str] | None = None, position_labels: Sequence[str] | None = None,
                       title: str = "logit lens", value_label: str = "correct-token log-prob") -> Figure:
    """A `[layer, pos]` logit-lens summary (e.g. the correct token's mean log-probability read at each layer).

    **Arguments:**

    - `values`: `[layer, pos]`, rows in forward order (the last row reads the final residual).
    - `layer_labels`, `position_labels`: tick labels (default: `resid_pre l` and `final`; position indices).
    - `title`, `value_label`: figure title and colour-bar label.

    **Returns:** a matplotlib `Figure`.
    """
    values = np.asarray(values, float)
    if values.ndim != 2:
        raise ValueError(f"values must be [layer, pos], got shape {values.shape}")
    n_layers, n_pos = values.shape
    layer_labels = list(layer_labels) if layer_labels is not None else (
        [f"resid_pre {l}" for l in range(n_layers - 1)] + ["final"])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * n_pos + 2), 1 + 0.5 * n_layers + 1), constrained_layout=True)
    image = ax.imshow(values, aspect="auto", cmap="viridis")
    ax.set_yticks(range(n_layers), layer_labels)
    if position_labels is not None:
        ax.set_xticks(range(n_pos), position_labels, rotation=90, fontsize=7)
    ax.set(xlabel="position", title=title)
    fig.colorbar(image, ax=ax, label=value_label)
    return fig


def attribution_bars(values, labels: Sequence[str], title: str = "direct logit attribution",
                     value_label: str = "logit difference") -> Figure:
    """One bar per component (`[component]`, e.g. DLA along a logit-difference direction, averaged over examples),
    in forward order, with positive bars blue and negative red."""
    values = np.asarray(values, float)
    if values.shape != (len(labels),):
        raise ValueError(f"values must be [component] with one label each: shape {values.shape}, {len(labels)} labels")
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(labels) + 2), 3.5), constrained_layout=True)
    ax.bar(range(len(labels)), values, color=np.where(values >= 0, "tab:blue", "tab:red"))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set(ylabel=value_label, title=title)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def pca_scatter(projected, colour, explained=None, colour_label: str = "label", title: str = "PCA",
                categorical: bool | None = None) -> Figure:
    """The first two principal components of some activations, one point per example, coloured by a label.

    **Arguments:**

    - `projected`: `[example, >=2]` (from `toymi.dissect.similarity.pca`).
    - `colour`: `[example]` label per point (task ground truth, answer, layer, ...).
    - `explained`: optional `[component]` explained-variance fractions, shown on the axes.
    - `colour_label`, `title`: colour-bar label and title.
    - `categorical`: a discrete colour map with a legend (default: when there are at most 10 distinct labels).

    **Returns:** a matplotlib `Figure`.
    """
    projected, colour = np.asarray(projected, float), np.asarray(colour)
    if projected.ndim != 2 or projected.shape[1] < 2 or colour.shape != projected.shape[:1]:
        raise ValueError(f"projected must be [example, >=2] and colour [example]: got {projected.shape}, {colour.shape}")
    distinct = np.unique(colour)
    categorical = len(distinct) <= 10 if categorical is None else categorical
    fig, ax = plt.subplots(figsize=(5.5, 4.5), constrained_layout=True)
    if categorical:
        for i, value in enumerate(distinct):
            chosen = colour == value
            ax.scatter(projected[chosen, 0], projected[chosen, 1], s=14, color=plt.cm.tab10(i % 10), label=str(value))
        ax.legend(title=colour_label, fontsize=7, markerscale=1.2)
    else:
        points = ax.scatter(projected[:, 0], projected[:, 1], s=14, c=colour, cmap="twilight")
        fig.colorbar(points, ax=ax, label=colour_label)
    pc = ["PC1", "PC2"]
    if explained is not None:
        pc = [f"{name} ({100 * float(e):.0f}% var.)" for name, e in zip(pc, np.asarray(explained))]
    ax.set(xlabel=pc[0], ylabel=pc[1], title=title)
    ax.set_aspect("equal", adjustable="datalim")
    return fig


def cka_heatmap(matrix, row_labels: Sequence[str], column_labels: Sequence[str] | None = None,
                title: str = "linear CKA") -> Figure:
    """A `[a, b]` CKA matrix (`toymi.dissect.similarity.cka_matrix`) with each cell's value written in."""
    matrix = np.asarray(matrix, float)
    column_labels = row_labels if column_labels is None else column_labels
    if matrix.shape != (len(row_labels), len(column_labels)):
        raise ValueError(f"matrix of shape {matrix.shape} needs {matrix.shape[0]} row and {matrix.shape[1]} column labels")
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(column_labels), 1.2 + 0.5 * len(row_labels)),
                           constrained_layout=True)
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="magma")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black")
    ax.set_xticks(range(len(column_labels)), column_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    return fig
