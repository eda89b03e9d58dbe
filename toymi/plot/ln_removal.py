"""LayerNorm removal: training loss while the norms are fixed one by one, against the control."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def ln_removal_curves(train_loss: np.ndarray, control_loss: np.ndarray, removal_steps: np.ndarray,
                      removal_names: list[str], title: str = "") -> Figure:
    """Training loss while the norms are removed one by one, against a control fine-tuned with them kept.

    **Arguments:**

    - `train_loss`: `[step]` loss during removal; `control_loss`: `[step]` the control's loss.
    - `removal_steps`: the step at which each norm was fixed; `removal_names`: its name.
    - `title`: figure title.

    **Returns:** a matplotlib `Figure`.
    """
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    ax.plot(np.arange(len(control_loss)), control_loss, color="tab:grey", lw=1, label="control (norms kept)")
    ax.plot(np.arange(len(train_loss)), train_loss, color="tab:red", lw=1, label="removing norms")
    top = max(np.max(train_loss), np.max(control_loss))
    for step, name in zip(removal_steps, removal_names):
        ax.axvline(step, color="black", lw=0.6, ls=":")
        ax.text(step, top, f" {name}", rotation=90, va="top", ha="left", fontsize=8)
    ax.set(xlabel="fine-tuning step", ylabel="training loss", yscale="log")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        fig.suptitle(title)
    return fig
