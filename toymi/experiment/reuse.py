"""`ensure_trained`: train an experiment into a directory unless the directory already holds that experiment's run."""

from __future__ import annotations

from pathlib import Path

from toymi.experiment.spec import Spec
from toymi.experiment.sweep import Sweep
from toymi.experiment.sweep_training import check_same_sweep, train_sweep
from toymi.experiment.training import check_same_spec, train


def ensure_trained(experiment: Spec | Sweep, directory: str | Path, *, progress: bool = False) -> Path:
    """`directory`, trained from `experiment` (a `Spec`, or a `Sweep` for an ensemble) unless it already holds a run
    of it — e.g. the one its CLI command (`toymi train` / `toymi sweep`) wrote, so a notebook reuses it. A run there
    of a different experiment (anything but `train.steps` differs) is an error, not reused."""
    directory = Path(directory)
    sweep = isinstance(experiment, Sweep)
    if not (directory / "spec.toml").exists():
        (train_sweep if sweep else train)(experiment, directory, progress=progress)
    elif sweep:
        check_same_sweep(experiment, directory / "sweep.toml")
    else:
        check_same_spec(experiment, directory / "spec.toml")
    return directory
