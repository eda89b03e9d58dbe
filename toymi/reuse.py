"""`train_or_load`: a run directory as a `Run`, trained first when it does not hold the experiment yet.

Training lives in `toymi.experiment` and loading in `toymi.run` (which only loads); this joins the two for
notebooks and the README, one layer above both.
"""

from __future__ import annotations

from pathlib import Path

from toymi.experiment.reuse import ensure_trained
from toymi.experiment.spec import Spec
from toymi.experiment.sweep import Sweep
from toymi.run import Run, load_run


def train_or_load(experiment: Spec | Sweep, directory: str | Path, *, progress: bool = False) -> Run:
    """The run in `directory`, trained from `experiment` (a `Spec`, or a `Sweep` for an ensemble) unless the directory
    already holds a run of it — e.g. the one its CLI command (`toymi train` / `toymi sweep`) wrote, so a notebook
    reuses it. A run there of a different experiment (anything but `train.steps` differs) is an error, not reused.
    """
    return load_run(ensure_trained(experiment, directory, progress=progress))
