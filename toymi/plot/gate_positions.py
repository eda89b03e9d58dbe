"""Per-gate input positions as heatmaps: which positions each discovery method finds for each AND gate
(`toymi.circuits.gate_positions`), the gate's own two inputs outlined."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def gate_positions_figure(per_gate: list[dict], title: str = "") -> Figure:
    """One panel per method: gates (rows, in the order given) × feature positions (columns), each gate's position
    scores divided by its largest (1: the position of its strongest edge), the gate's two inputs outlined in black.
    `per_gate`: rows with `gate` (a, b), `method` and `positions` (as `gates.json` and the benchmark write them)."""
    methods = list(dict.fromkeys(r["method"] for r in per_gate))
    if not methods:
        raise ValueError("no per-gate results to draw")
    fig, axes = plt.subplots(1, len(methods), figsize=(1.9 * len(methods) + 1.0, 6.0), squeeze=False,
                             sharey=True, constrained_layout=True)
    for ax, method in zip(axes[0], methods):
        rows = [r for r in per_gate if r["method"] == method]
        scores = np.array([r["positions"] for r in rows], np.float64)
        shown = scores / np.maximum(scores.max(1, keepdims=True), 1e-12)
        image = ax.imshow(shown, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        for i, r in enumerate(rows):
            for j in r["gate"]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="tab:red", lw=0.8))
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("input position")
        ax.set_xticks(range(scores.shape[1]))
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("gate")
    axes[0][0].set_yticks(range(len(rows)), [f"{a},{b}" for a, b in (r["gate"] for r in rows)], fontsize=5)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.6, label="score / the gate's largest")
    fig.suptitle(title or "each gate's position scores; its two inputs outlined in red", fontsize=10)
    return fig
