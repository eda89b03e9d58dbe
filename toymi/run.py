"""`load_run`: a finished (or interrupted) run directory as Python objects."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import numpy as np

from toymi.errors import NoCheckpoints, RunDirectoryError
from toymi.experiment.ensemble import stack_tasks
from toymi.experiment.spec import Spec, load_saved
from toymi.experiment.sweep import Sweep
from toymi.experiment.sweep_training import abstract_ensemble_state
from toymi.experiment.training import abstract_state
from toymi.tasks import Task
from toymi.train import metrics_log
from toymi.train.checkpoints import Checkpoints
from toymi.train.state import TrainState
from toymi.trees import stack_on_host, unstack


class StaleModel(UserWarning):
    """`run.model` is older than the last step in the run's metrics."""


class Run:
    """A run directory: its spec, metrics, and every checkpoint.

    - `run.spec`, `run.task`, `run.metrics` (`{"step": array, "test_loss": array, ...}`)
    - `run.steps`: checkpointed steps; `run.model`: the last checkpoint's model
    - `run.checkpoint(step)`: the model at `step`; `run.state(step)`: the whole TrainState
    - `run.checkpoint_series(steps=None)`: models stacked on a leading step axis, for `jax.vmap` over training
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not (self.directory / "spec.toml").exists():
            raise RunDirectoryError(f"{self.directory} is not a toymi run directory (no spec.toml)")
        self.spec = load_saved(self.directory / "spec.toml")
        self._checkpoints = Checkpoints(self.directory / "checkpoints", write=False)  # never creates anything

    @functools.cached_property
    def task(self) -> Task:
        return self.spec.build_task()

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        return metrics_log.as_arrays(metrics_log.read(self.directory / "metrics.jsonl", missing_ok=False))

    @property
    def steps(self) -> list[int]:
        return self._checkpoints.steps()

    @functools.cached_property
    def _abstract_state(self) -> TrainState:
        return abstract_state(self.spec)  # traced once: a checkpoint series restores many steps into one structure

    def state(self, step: int) -> TrainState:
        return self._checkpoints.restore(step, like=self._abstract_state)

    def checkpoint(self, step: int) -> eqx.Module:
        return self.state(step).model

    @property
    def model_step(self) -> int:
        """The step `run.model` comes from: the newest checkpoint."""
        if not self.steps:
            raise NoCheckpoints(f"{self.directory} has no checkpoints yet")
        return self.steps[-1]

    @property
    def model(self) -> eqx.Module:
        """The newest checkpoint's model (verified against its checksums); warns when the metrics run past it."""
        step = self.model_step
        logged = self.metrics.get("step")
        if logged is not None and len(logged) and int(logged[-1]) != step:
            warnings.warn(f"{self.directory}: run.model is step {step}, but metrics.jsonl ends at step "
                          f"{int(logged[-1])} (later checkpoints are missing or the run was interrupted)",
                          StaleModel, stacklevel=2)
        return self.checkpoint(step)

    def checkpoint_series(self, steps: Sequence[int] | None = None) -> eqx.Module:
        """Models at `steps` (default: all) stacked on a leading axis: `jax.vmap(f)(series)` maps over training."""
        return stack_on_host([self.checkpoint(s) for s in (self.steps if steps is None else steps)])

    def close(self) -> None:
        self._checkpoints.close()


class SweepRun(Run):
    """A sweep directory (`toymi sweep`): everything `Run` has, with a leading member axis.

    - `run.members`: each member's settings that differ from the base spec (`[{"train.weight_decay": 1.0, ...}]`)
    - `run.metrics`: each metric `[eval, member]`; `run.model` / `run.checkpoint(step)`: models stacked over members
      (`jax.vmap(f)(run.model)` applies any dissection function to every member; `run.member(i)` gives one)
    - `run.checkpoint_series()`: `[step, member, ...]`
    - `run.task`: the members' tasks stacked (`Task.stack`); `run.member_task(i)` gives one
    """

    def __init__(self, directory: str | Path):
        super().__init__(directory)
        self.sweep = Sweep.load(self.directory / "sweep.toml")
        self.members = self.sweep.members

    @property
    def n_members(self) -> int:
        return len(self.members)

    @functools.cached_property
    def member_specs(self) -> list[Spec]:
        return self.sweep.member_specs()

    @functools.cached_property
    def task(self) -> Task:
        return stack_tasks(self.member_specs)

    def member_task(self, i: int) -> Task:
        return self.member_specs[i].build_task()

    def member(self, i: int, step: int | None = None) -> eqx.Module:
        """Member `i`'s model at `step` (default: the last checkpoint)."""
        if not 0 <= i < self.n_members:
            raise IndexError(f"member {i} out of range: this sweep has {self.n_members} members")
        return unstack(self.model if step is None else self.checkpoint(step), i)

    @functools.cached_property
    def _abstract_state(self) -> TrainState:
        return abstract_ensemble_state(self.sweep)


def load_run(directory: str | Path) -> Run:
    """Open a run directory written by `toymi train`, or a sweep directory written by `toymi sweep`."""
    if (Path(directory) / "sweep.toml").exists():
        return SweepRun(directory)
    return Run(directory)


def load_single_run(directory: str | Path, command: str) -> Run:
    """`load_run` for a command that reads one model (`command`: e.g. "dissect"): a sweep is a one-line error."""
    run = load_run(directory)
    if isinstance(run, SweepRun):
        raise RunDirectoryError(f"{directory} is a sweep; {command} one member's model in Python (run.member(i)) or "
                                "use `toymi phase` for the sweep as a whole")
    return run

