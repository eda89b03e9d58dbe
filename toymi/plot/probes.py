"""Probe figures from `toymi.dissect.probes` results: accuracy by layer against the random-model control."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def probe_figure(model, control, layer_names=None, class_names=None, chance: float | None = None,
                 title: str = "") -> Figure:
    """Train/test accuracy per layer for the model and its control; per-class test accuracy at the model's best
    layer; with 64 targets (a chess board), per-square test accuracy on an 8×8 board (a1 bottom left).

    **Arguments:**

    - `model`, `control`: `ProbeResult`s (`probe_model` / `probe_with_control`), same layers.
    - `layer_names`: labels of the layer axis; `class_names`: of the classes.
    - `chance`: a baseline accuracy to draw (e.g. always predicting the most common class).
    - `title`: figure title.
    """
    test, test_c = np.asarray(model.test_accuracy), np.asarray(control.test_accuracy)
    n_layers = len(test)
    layer_names = list(layer_names) if layer_names is not None else [str(i) for i in range(n_layers)]
    board = np.asarray(model.test_target_accuracy).shape[1] == 64
    fig, axes = plt.subplots(1, 3 if board else 2, figsize=(16 if board else 12, 4.5), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1.2, 1.2, 0.8] if board else [1, 1]})
    x = np.arange(n_layers)
    ax = axes[0]
    ax.plot(x, test, "o-", color="C0", label="model, test")
    ax.plot(x, np.asarray(model.train_accuracy), "o--", color="C0", alpha=0.5, label="model, train")
    ax.plot(x, test_c, "s-", color="C7", label="random-init control, test")
    ax.plot(x, np.asarray(control.train_accuracy), "s--", color="C7", alpha=0.5, label="control, train")
    if chance is not None:
        ax.axhline(chance, color="C3", lw=0.8, ls=":", label="majority class")
    ax.set(xticks=x, xlabel="layer", ylabel="accuracy", title="linear probe accuracy by layer")
    ax.set_xticklabels(layer_names, rotation=30, ha="right")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)

    best = int(np.argmax(test))
    per_class = np.asarray(model.test_class_accuracy)[best]
    per_class_c = np.asarray(control.test_class_accuracy)[best]
    n_classes = len(per_class)
    class_names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    ax = axes[1]
    cx = np.arange(n_classes)
    ax.bar(cx - 0.2, np.nan_to_num(per_class), 0.4, color="C0", label="model")
    ax.bar(cx + 0.2, np.nan_to_num(per_class_c), 0.4, color="C7", label="control")
    ax.set(xticks=cx, ylim=(0, 1.02), ylabel="test recall", title=f"per-class accuracy at layer {layer_names[best]}")
    ax.set_xticklabels(class_names)
    ax.legend(fontsize=8)
    if board:
        ax = axes[2]
        squares = np.asarray(model.test_target_accuracy)[best].reshape(8, 8)  # row = rank 1..8, col = file a..h
        image = ax.imshow(squares, origin="lower", cmap="viridis", vmin=min(0.5, squares.min()), vmax=1)
        ax.set(xticks=range(8), yticks=range(8), title=f"per-square test accuracy, layer {layer_names[best]}")
        ax.set_xticklabels(list("abcdefgh"))
        ax.set_yticklabels(range(1, 9))
        fig.colorbar(image, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


__all__ = ["probe_figure"]
