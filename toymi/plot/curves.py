"""Training curves from a run's metrics: the grokking figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def training_curves(metrics: dict[str, np.ndarray], title: str = "") -> Figure:
    """Loss (log-log) and, where logged, accuracy (log step) of every eval set against step.

    **Arguments:**

    - `metrics`: columns as `toymi.load_run(...).metrics` gives them: `step` and `{set}_loss`, `{set}_accuracy`.
    - `title`: figure title.

    **Returns:** a matplotlib `Figure` with two panels.
    """
    steps = np.asarray(metrics["step"], float)
    # Eval sets are the prefixes of `{set}_loss` columns; set names have no underscore, so per-part metrics such as
    # `test_digit0_loss` are not mistaken for sets.
    sets = [k[: -len("_loss")] for k in metrics if k.endswith("_loss") and "_" not in k[: -len("_loss")]]
    with_accuracy = [name for name in sets if f"{name}_accuracy" in metrics]
    fig, axes = plt.subplots(1, 2 if with_accuracy else 1, figsize=(11 if with_accuracy else 6, 4),
                             constrained_layout=True, squeeze=False)
    ax_loss = axes[0, 0]
    shown = steps > 0  # log axes cannot show step 0
    for name in sets:
        _plot_metric(ax_loss, steps[shown], metrics[f"{name}_loss"][shown], name)
    ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="loss", title="loss")
    if with_accuracy:
        ax_acc = axes[0, 1]
        for name in with_accuracy:
            _plot_metric(ax_acc, steps[shown], metrics[f"{name}_accuracy"][shown], name)
        ax_acc.set(xscale="log", xlabel="step", ylabel="accuracy", title="accuracy", ylim=(-0.02, 1.02))
    for ax in axes[0]:
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def _plot_metric(ax, steps: np.ndarray, values: np.ndarray, name: str) -> None:
    """One curve; for a sweep (`[eval, member]`) every member thin and the median bold, in one colour."""
    if values.ndim == 1:
        ax.plot(steps, values, label=name)
        return
    (line,) = ax.plot(steps, np.nanmedian(values, axis=1), label=f"{name} (median of {values.shape[1]})", lw=2)
    ax.plot(steps, values, color=line.get_color(), lw=0.6, alpha=0.35)


def save_figure(fig: Figure, path, dpi: int = 120) -> None:
    """Write `fig` to `path` (a PNG at `dpi`) and close it."""
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
