"""Training curves of every logged metric as one Plotly figure, with log/linear buttons for both axes."""

from __future__ import annotations

import numpy as np


def metric_groups(metrics: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Panels: every `*_loss` together, every `*_accuracy` together, each other metric alone (`elapsed_s` and
    `step` are not curves)."""
    names = [k for k in metrics if k not in ("step", "elapsed_s")]
    groups = {"loss": [k for k in names if k.endswith("_loss")],
              "accuracy": [k for k in names if k.endswith("_accuracy")]}
    groups = {k: v for k, v in groups.items() if v}
    for k in names:
        if not (k.endswith("_loss") or k.endswith("_accuracy")):
            groups[k] = [k]
    return groups


def _axis_buttons(n_panels: int, axis: str, x: float) -> dict:
    """A Plotly button group that sets every panel's `axis` (x or y) to log or linear."""
    keys = [f"{axis}axis" + ("" if i == 0 else str(i + 1)) for i in range(n_panels)]
    return dict(type="buttons", direction="right", x=x, y=1.12, xanchor="left", yanchor="bottom", showactive=True,
                active=-1,
                buttons=[dict(label=f"{axis} log", method="relayout", args=[{f"{k}.type": "log" for k in keys}]),
                         dict(label=f"{axis} linear", method="relayout",
                              args=[{f"{k}.type": "linear" for k in keys}])])


def curves_figure(metrics: dict[str, np.ndarray], columns: int = 3):
    """Every metric against step; a sweep's metrics (`[eval, member]`) get one thin line per member.

    **Arguments:**

    - `metrics`: `load_run(...).metrics`.
    - `columns`: panels per row.

    **Returns:** a Plotly `Figure` (losses on a log y axis at first; buttons switch every panel's x or y).
    """
    from plotly.subplots import make_subplots

    groups = metric_groups(metrics)
    if not groups:
        raise ValueError("no metrics to plot (metrics.jsonl has only step and elapsed_s)")
    rows = -(-len(groups) // columns)
    cols = min(columns, len(groups))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(groups), horizontal_spacing=0.07,
                        vertical_spacing=0.5 / rows)
    steps = np.asarray(metrics["step"])
    for i, names in enumerate(groups.values()):
        for name in names:
            values = np.asarray(metrics[name], float)
            members = values[:, None] if values.ndim == 1 else values
            for m in range(members.shape[1]):
                label = name if members.shape[1] == 1 else f"{name} [{m}]"
                fig.add_scatter(x=steps, y=members[:, m], name=label, mode="lines", legendgroup=name,
                                showlegend=m == 0, line=dict(width=2 if members.shape[1] == 1 else 1),
                                row=i // cols + 1, col=i % cols + 1)
    for i, name in enumerate(groups):  # losses log, the rest (accuracies, norms) linear until a button says else
        fig.update_yaxes(type="log" if name == "loss" else "linear", row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=330 * rows + 60, margin=dict(t=90, b=40, l=50, r=20),
                      updatemenus=[_axis_buttons(len(groups), "y", 0.0), _axis_buttons(len(groups), "x", 0.25)])
    return fig
