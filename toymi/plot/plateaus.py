"""Activation-plateau curves: output KL against distance, one colour per direction type."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

COLOURS = {"real": "tab:blue", "random": "tab:orange", "steering": "tab:green"}


def plateau_curves(ts: np.ndarray, kl: np.ndarray, names: tuple[str, ...], title: str = "") -> Figure:
    """KL from the unperturbed output against distance along each direction type: a thin line per base input and
    the median in bold, on a linear axis (where a plateau followed by a jump is visible) and a log axis (where the
    small-distance behaviour is).

    **Arguments:**

    - `ts`: `[step]` distances (multiples of the real displacement's norm, as `toymi.dissect.plateaus` gives them).
    - `kl`: `[direction, base, step]` KL divergences (nats).
    - `names`: one name per direction (`"real"`, `"random"`, `"steering"`).
    - `title`: figure title.

    **Returns:** a matplotlib `Figure` with two panels.
    """
    ts, kl = np.asarray(ts, float), np.asarray(kl, float)
    if kl.ndim != 3 or kl.shape[0] != len(names) or kl.shape[2] != len(ts):
        raise ValueError(f"kl must be [direction={len(names)}, base, step={len(ts)}], got shape {kl.shape}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    positive = ts > 0
    for name, curves in zip(names, kl):
        colour = COLOURS.get(name)
        for ax, shown in ((axes[0], slice(None)), (axes[1], positive)):
            ax.plot(ts[shown], curves[:, shown].T, color=colour, alpha=0.15, lw=0.8)
            ax.plot(ts[shown], np.median(curves[:, shown], 0), color=colour, lw=2.2, label=f"{name} (median)")
    axes[0].set(xlabel="distance t (units of ‖a_other − a‖)", ylabel="output KL (nats)", title="linear")
    axes[1].set(xlabel="distance t", ylabel="output KL (nats)", yscale="log", title="log")
    for ax in axes:
        ax.axvline(1.0, color="grey", lw=0.8, ls=":")
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig

