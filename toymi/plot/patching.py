"""Figures of causal grids: patching and ablation heatmaps, attribution against patching, steering curves.

Every function takes arrays (the grids `toymi.dissect` returns) and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure


def _heatmap(ax, grid: np.ndarray, center: float, limit: float, xlabel: str, ylabel: str, title: str,
             xticklabels: Sequence[str] | None = None, yticklabels: Sequence[str] | None = None):
    norm = TwoSlopeNorm(vcenter=center, vmin=center - limit, vmax=center + limit)
    image = ax.imshow(grid, cmap="RdBu", norm=norm, aspect="auto", interpolation="nearest")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_yticks(range(grid.shape[0]), yticklabels if yticklabels is not None else range(grid.shape[0]))
    if xticklabels is not None:
        ax.set_xticks(range(grid.shape[1]), xticklabels, rotation=90, fontsize=7)
    return image


def patching_heatmaps(grids: dict[str, np.ndarray], center: float = 0.0, xlabels: dict[str, str] | None = None,
                      ylabels: dict[str, str] | None = None, xticklabels: Sequence[str] | None = None,
                      title: str = "", colorbar_label: str = "metric") -> Figure:
    """One heatmap per 2-D grid (rows are usually layers), on one colour scale centred at `center`.

    **Arguments:**

    - `grids`: panel title -> `[rows, columns]` array (a `[layer, head, pos]` grid: reshape to `[layer*head, pos]`).
    - `center`: the value shown white, e.g. the clean metric, so red and blue show the direction of an effect.
    - `xlabels`, `ylabels`: per-panel axis labels (default "position" and "layer").
    - `xticklabels`: labels of the columns (e.g. the tokens), shared by every panel with that many columns.
    - `title`, `colorbar_label`: figure title and colour bar label.

    **Returns:** a Figure with one row of panels and a shared colour bar.
    """
    if not grids:
        raise ValueError("no grids to plot")
    arrays = {name: np.asarray(g, float) for name, g in grids.items()}
    for name, g in arrays.items():
        if g.ndim != 2:
            raise ValueError(f"grid {name!r} has shape {g.shape}; reshape it to 2-D [rows, columns] first")
    limit = max(float(np.nanmax(np.abs(g - center))) for g in arrays.values()) or 1.0
    widths = [max(g.shape[1], 3) for g in arrays.values()]
    fig, axes = plt.subplots(1, len(arrays), figsize=(2.2 + 0.28 * sum(widths) + 1.2 * len(arrays), 3.6),
                             gridspec_kw={"width_ratios": widths}, constrained_layout=True, squeeze=False)
    for ax, (name, g) in zip(axes[0], arrays.items()):
        ticks = xticklabels if xticklabels is not None and len(xticklabels) == g.shape[1] else None
        image = _heatmap(ax, g, center, limit, (xlabels or {}).get(name, "position"),
                         (ylabels or {}).get(name, "layer"), name, ticks)
    fig.colorbar(image, ax=axes[0].tolist(), label=colorbar_label, shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def head_position_rows(grid: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A `[layer, head, pos]` grid as `[layer*head, pos]` rows labelled `L.H`, for `patching_heatmaps`."""
    grid = np.asarray(grid)
    if grid.ndim != 3:
        raise ValueError(f"expected a [layer, head, pos] grid, got shape {grid.shape}")
    n_layers, n_heads, _ = grid.shape
    return grid.reshape(n_layers * n_heads, -1), [f"{l}.{h}" for l in range(n_layers) for h in range(n_heads)]


def attribution_scatter(patched, attributed=None, title: str = "attribution vs activation patching",
                        units: str = "metric") -> Figure:
    """Attribution patching's estimate against the real patching effect, one point per cell, with y = x.

    **Arguments:**

    - `patched`, `attributed`: grids of equal shape (`compare_attribution` gives both); or `patched` a dict
      `{name: (patched, attributed)}`, one colour per grid, and `attributed` None.
    - `title`, `units`: figure title and what the values are (axis labels).
    """
    pairs = patched if isinstance(patched, dict) else {"cells": (patched, attributed)}
    if not isinstance(patched, dict) and attributed is None:
        raise ValueError("give the attributed grid too, or a dict {name: (patched, attributed)}")
    fig, ax = plt.subplots(figsize=(5.6, 4.8), constrained_layout=True)
    lo, hi = np.inf, -np.inf
    for name, (p, a) in pairs.items():
        p, a = np.asarray(p, float).ravel(), np.asarray(a, float).ravel()
        if p.shape != a.shape:
            raise ValueError(f"{name}: patched {p.shape} and attributed {a.shape} differ in size")
        r = np.corrcoef(p, a)[0, 1] if p.std() > 0 and a.std() > 0 else np.nan
        ax.scatter(p, a, s=14, alpha=0.7, label=f"{name} (r = {r:.3f})")
        lo, hi = min(lo, p.min(), a.min()), max(hi, p.max(), a.max())
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="gray", lw=1, ls="--", label="y = x")
    ax.set(xlabel=f"activation patching ({units})", ylabel=f"attribution patching ({units})", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def steering_curves(grid: np.ndarray, scales: np.ndarray, layer_labels: Sequence[str] | None = None,
                    ylabel: str = "metric", title: str = "steering") -> Figure:
    """The metric against the steering scale, one line per layer (`steering_sweep`'s `[scale, layer]` grid)."""
    grid, scales = np.asarray(grid, float), np.asarray(scales, float)
    if grid.ndim != 2 or grid.shape[0] != scales.shape[0]:
        raise ValueError(f"grid must be [scale, layer] with {scales.shape[0]} scales, got shape {grid.shape}")
    labels = layer_labels or [f"layer {l}" for l in range(grid.shape[1])]
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for l in range(grid.shape[1]):
        ax.plot(scales, grid[:, l], marker="o", ms=3, label=labels[l])
    ax.axvline(0, color="gray", lw=0.8)
    ax.set(xlabel="steering scale", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
