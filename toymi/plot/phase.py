"""Phase diagrams of a sweep: one value (e.g. steps to grok) per cell of a two-setting grid."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure


def phase_diagram(xs, ys, grid: np.ndarray, counts: np.ndarray | None = None, *, xlabel: str, ylabel: str,
                  value_label: str, title: str = "", log: bool = True) -> Figure:
    """A heatmap of `grid [len(ys), len(xs)]` with each cell's value written in it; NaN cells (never reached)
    are grey and marked "—". `counts`, if given, is written under each value as the number of members averaged."""
    grid = np.asarray(grid, float)
    fig, ax = plt.subplots(figsize=(1.1 * len(xs) + 2.5, 0.8 * len(ys) + 2), constrained_layout=True)
    finite = grid[np.isfinite(grid)]
    norm = LogNorm(finite.min(), finite.max()) if log and finite.size and finite.min() > 0 else None
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, norm=norm)
    for (i, j), v in np.ndenumerate(grid):
        text = "—" if not np.isfinite(v) else f"{v:.3g}"
        if counts is not None:
            text += f"\n(n={counts[i, j]})"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="k" if not np.isfinite(v) else "w")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(image, ax=ax, label=value_label)
    return fig
