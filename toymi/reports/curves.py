"""A run's training curves, drawn into `RUN/figures/training_curves.png` (after `toymi train`/`sweep`, `toymi plot`)."""

from __future__ import annotations

from pathlib import Path

from toymi.errors import RunDirectoryError
from toymi.plot import save_figure, training_curves
from toymi.train import metrics_log


def write_training_curves(run_dir: Path) -> Path:
    """Draw every logged metric of `run_dir` (a run or a sweep) against step; returns the figure's path."""
    metrics = metrics_log.as_arrays(metrics_log.read(run_dir / "metrics.jsonl"))
    if not metrics:
        raise RunDirectoryError(f"{run_dir} has no metrics.jsonl to plot")
    (run_dir / "figures").mkdir(exist_ok=True)
    path = run_dir / "figures" / "training_curves.png"
    save_figure(training_curves(metrics, title=run_dir.name), path)
    return path
