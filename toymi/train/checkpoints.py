"""A series of TrainState checkpoints in one directory, written by orbax, each sealed with checksums.

Orbax writes each step into a temporary directory and renames it into place only once complete, so an interrupted
save never leaves a checkpoint that looks finished. Saves are asynchronous: a step is sealed (its checksums written,
`toymi.train.integrity`) when the next save starts or on `close`, which waits for them. `restore` verifies them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from toymi.errors import CheckpointDamaged, RunDirectoryError
from toymi.train import integrity
from toymi.train.sharding import barrier, from_process_0
from toymi.train.state import TrainState, step_of

# orbax logs every save at INFO through absl; a training run should only show its progress bar.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpoints:
    """`write=False` opens an existing directory read-only (it is never created); `write=True` is for the one process
    that holds the run directory's lock: it removes orbax's leftovers of interrupted saves."""

    def __init__(self, directory: str | Path, *, write: bool = True):
        self.directory = Path(directory).absolute()
        if not write and not self.directory.is_dir():
            raise RunDirectoryError(f"{self.directory} does not exist: the run has no checkpoints")
        if write and jax.process_index() == 0:
            fresh = not self.directory.exists() or not any(self.directory.iterdir())
            for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)
            if fresh:
                self.directory.mkdir(parents=True, exist_ok=True)
                (self.directory / integrity.MARKER).touch()
        if write:  # multi-process: every process reads the directory only once process 0 has prepared it
            barrier("toymi: checkpoints directory ready")
        self.verified = (self.directory / integrity.MARKER).exists()
        self._pending: list[int] = []
        self.last_finite: int | None = None  # newest step saved with finite metrics (set by the host loop)
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=None, create=write)
        )

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, state: TrainState) -> None:
        self.flush()  # the previous save had a whole chunk to finish: seal it before starting the next
        step = step_of(state)
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._pending.append(step)

    def flush(self) -> None:
        """Wait for saves in flight and seal them."""
        if self._pending:
            self._manager.wait_until_finished()
            if jax.process_index() == 0:
                for step in self._pending:
                    integrity.seal(self.directory / str(step))
            self._pending = []

    def problem(self, step: int) -> str | None:
        """Why checkpoint `step` cannot be trusted, or None (always None for a directory without checksums)."""
        return integrity.problem(self.directory / str(step)) if self.verified else None

    def restore(self, step: int, like: TrainState) -> TrainState:
        """Load `step` into the structure of `like` (a state built from the same spec, or its eval_shape), after
        checking every file against its checksum."""
        if step not in self.steps():
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.steps()}")
        if (why := self.problem(step)) is not None:
            raise CheckpointDamaged(f"checkpoint {step} is damaged: {why}")
        abstract = jax.tree.map(_restore_target, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def newest_intact(self, report: Callable[[str], None]) -> int | None:
        """The newest step that passes its checks; newer damaged ones are reported and moved to `../damaged/` (kept
        for inspection, out of the series a resumed run writes again). Multi-process: process 0 checks and moves,
        and every process gets its answer."""
        found = self._newest_intact(report) if jax.process_index() == 0 else None
        step = from_process_0(-1 if found is None else found)
        if jax.process_index() != 0:
            self._manager.reload()  # process 0 may have moved damaged steps away
        return None if step < 0 else step

    def _newest_intact(self, report: Callable[[str], None]) -> int | None:
        for step in reversed(self.steps()):
            why = self.problem(step)
            if why is None:
                return step
            aside = self.directory.parent / "damaged_checkpoints"
            aside.mkdir(exist_ok=True)
            shutil.move(self.directory / str(step), aside / str(step))
            seal = integrity.seal_path(self.directory / str(step))
            if seal.exists():
                shutil.move(seal, aside / seal.name)
            self._manager.reload()
            report(f"checkpoint {step} is damaged ({why}); moved it to {aside / str(step)} and fall back to an "
                   "older one")
        return None

    def close(self) -> None:
        self.flush()
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _restore_target(leaf):
    """A leaf's restore target. Without a sharding (an `eval_shape` target) it goes to this process's first device,
    whatever devices wrote it: a checkpoint saved by a multi-process run (its arrays on other processes' devices)
    loads in a single process."""
    target = ocp.utils.to_shape_dtype_struct(leaf)
    if isinstance(target, jax.ShapeDtypeStruct) and target.sharding is None:
        target = jax.ShapeDtypeStruct(target.shape, target.dtype,
                                      sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    return target
