"""A sweep's phase diagram (`toymi phase`, and after `toymi sweep`): a metric summarised per member, averaged over
seeds onto the grid of one or two swept settings, drawn into `SWEEP/figures/phase_<what>.png`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from toymi.dissect.sweeps import first_step_below, grid_of
from toymi.errors import ConfigError, UnknownName
from toymi.plot import save_figure
from toymi.plot.phase import phase_diagram
from toymi.run import load_run
from toymi.tasks import TASKS


@dataclasses.dataclass(frozen=True)
class PhaseReport:
    """What `phase_report` made: the figure's path (None when there was nothing to draw) and the lines to show."""

    path: Path | None
    lines: list[str]


def phase_report(run_dir: Path, x: str | None = None, y: str | None = None, metric: str | None = None,
                 below: float | None = None) -> PhaseReport:
    """Steps until `metric` first drops below `below`, averaged over seeds, on the grid of `x` × `y`. `metric` and
    `below` default to the task's `sweep_summary`; a task without a threshold gets the metric's final value.
    `x` and `y` default to the sweep's first two settings besides the seed."""
    run = load_run(run_dir)
    varied = [k for k in run.sweep.grid if k != "train.seed"]
    if x is None:
        if not varied:
            return PhaseReport(None, ["no grid settings besides seeds: no phase diagram"])
        x, y = varied[0], (varied[1] if len(varied) > 1 else None)
    for key in (x, y):
        if key is not None and any(key not in m for m in run.members):
            raise UnknownName(f"{key!r} is not a setting of this sweep's members; they vary {sorted(run.members[0])}")
    metrics, lines = run.metrics, []
    task_name = run.sweep.base_spec().task["name"]
    task_metric, task_below = TASKS[task_name].sweep_summary
    below = task_below if below is None else below
    if metric is None:
        metric = task_metric if task_metric in metrics else next(k for k in metrics if k.endswith("_loss"))
    if metric not in metrics:
        raise ConfigError(f"no metric {metric!r} in {run_dir}; have {sorted(k for k in metrics if k != 'step')}")
    if below is None:
        lines.append(f"task {task_name!r}: its loss scale changes with the swept settings, so no steps-until-threshold "
                     f"diagram unless asked (`toymi phase {run_dir} --below V`); the final {metric} instead:")
        values, label, name = metrics[metric][-1], f"final {metric}", f"final_{metric}"
    else:
        values = first_step_below(metrics["step"], metrics[metric], below)
        label, name = f"first step with {metric} < {below:g}", f"{metric}_below_{below:g}"
    xs, ys, grid, counts = grid_of(run.members, values, x, y)
    fig = phase_diagram(xs, ys, grid, counts, xlabel=x, ylabel=y or "", value_label=label,
                        title=f"{run_dir.name}: {label}" + (" (— never)" if "<" in label else ""))
    path = run_dir / "figures" / f"phase_{name}.png"
    save_figure(fig, path)
    fmt = (lambda v: f"{v:.4g}") if below is None else (lambda v: f"{np.round(v, 1)}")  # noqa: E731
    lines += [(f"{y}={yv}: " if y is not None else "") + ", ".join(f"{x}={xv} → {fmt(v)}" for xv, v in zip(xs, row))
              for yv, row in zip(ys, grid)]
    return PhaseReport(path, lines)
