"""Attention figures from arrays: patterns of every head, head scores, composition scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def attention_patterns(pattern, token_labels: Sequence[str] | None = None, title: str = "attention patterns") -> Figure:
    """Every head's pattern on one sequence, one panel per head (rows: layers).

    **Arguments:**

    - `pattern`: `[layer, head, query_pos, key_pos]` (`acts["pattern"]` of one sequence).
    - `token_labels`: one label per position, shown on both axes when the sequence is short enough to read.
    - `title`: figure title.

    **Returns:** a matplotlib `Figure`.
    """
    pattern = np.asarray(pattern, float)
    if pattern.ndim != 4 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must be [layer, head, query_pos, key_pos], got shape {pattern.shape}")
    n_layers, n_heads, n_pos, _ = pattern.shape
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.6 * n_heads + 1, 2.6 * n_layers + 0.6),
                             constrained_layout=True, squeeze=False)
    for (layer, head), ax in np.ndenumerate(axes):
        image = ax.imshow(pattern[layer, head], vmin=0, vmax=1, cmap="Blues")
        ax.set_title(f"L{layer}H{head}", fontsize=9)
        if token_labels is not None and n_pos <= 32:
            ax.set_xticks(range(n_pos), token_labels, rotation=90, fontsize=5)
            ax.set_yticks(range(n_pos), token_labels, fontsize=5)
        else:
            ax.set_xticks([]), ax.set_yticks([])
    fig.supxlabel("key position"), fig.supylabel("query position")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention")
    fig.suptitle(title)
    return fig


def head_score_heatmaps(scores: Mapping[str, np.ndarray], title: str = "head scores") -> Figure:
    """One `[layer, head]` heatmap per score (`toymi.dissect.attention.head_scores`), values written in, scale 0-1."""
    if not scores:
        raise ValueError("scores is empty: pass {name: [layer, head] array}")
    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores) + 1, 2.8), constrained_layout=True,
                             squeeze=False)
    for ax, (name, values) in zip(axes[0], scores.items()):
        values = np.asarray(values, float)
        if values.ndim != 2:
            raise ValueError(f"score {name!r} must be [layer, head], got shape {values.shape}")
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        _write_values(ax, values)
        ax.set_xticks(range(values.shape[1])), ax.set_yticks(range(values.shape[0]))
        ax.set(xlabel="head", ylabel="layer", title=name.replace("_", " "))
    fig.colorbar(image, ax=axes[0], shrink=0.8)
    fig.suptitle(title)
    return fig


def composition_heatmaps(scores: Mapping[str, np.ndarray], title: str = "composition scores",
                         baseline: float | None = None) -> Figure:
    """Q/K/V composition scores (`toymi.dissect.circuits.composition_scores`), each `[layer_a, head_a, layer_b,
    head_b]` shown as earlier heads (rows) × later heads (columns); pairs that cannot compose are blank.
    `baseline` (e.g. `1/sqrt(d_model)`, the random-matrix value) is noted in the title."""
    if not scores:
        raise ValueError("scores is empty: pass {'Q': ..., 'K': ..., 'V': ...}")
    fig, axes = plt.subplots(1, len(scores), figsize=(3.6 * len(scores) + 1, 3.4), constrained_layout=True,
                             squeeze=False)
    for ax, (kind, values) in zip(axes[0], scores.items()):
        values = np.asarray(values, float)
        if values.ndim != 4:
            raise ValueError(f"{kind} scores must be [layer_a, head_a, layer_b, head_b], got shape {values.shape}")
        n_layers, n_heads = values.shape[:2]
        names = [f"L{l}H{h}" for l in range(n_layers) for h in range(n_heads)]
        flat = values.reshape(n_layers * n_heads, n_layers * n_heads)
        keep_rows = ~np.isnan(flat).all(1)
        keep_cols = ~np.isnan(flat).all(0)
        shown = flat[keep_rows][:, keep_cols]
        image = ax.imshow(shown, vmin=0, vmax=max(0.5, float(np.nanmax(flat))), cmap="viridis")
        _write_values(ax, shown)
        ax.set_xticks(range(keep_cols.sum()), [n for n, k in zip(names, keep_cols) if k], rotation=90)
        ax.set_yticks(range(keep_rows.sum()), [n for n, k in zip(names, keep_rows) if k])
        ax.set(xlabel="later head (reads)", ylabel="earlier head (writes)", title=f"{kind}-composition")
    fig.colorbar(image, ax=axes[0], shrink=0.8)
    fig.suptitle(title if baseline is None else f"{title} (random baseline ≈ {baseline:.2f})")
    return fig


def _write_values(ax, values: np.ndarray) -> None:
    if values.size > 64:
        return
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.5 * np.nanmax(values) else "black")
