"""A series of TrainState checkpoints in one directory, written by orbax.

Orbax writes each step into a temporary directory and renames it into place only once complete, so an interrupted
save never leaves a checkpoint that looks finished. Saves are asynchronous; `close` (or leaving the `with` block)
waits for them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from toymi.train.state import TrainState, step_of

# orbax logs every save at INFO through absl; a training run should only show its progress bar.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpoints:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=None, create=True)
        )

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, state: TrainState) -> None:
        self._manager.save(step_of(state), args=ocp.args.StandardSave(state))

    def restore(self, step: int, like: TrainState) -> TrainState:
        """Load `step` into the structure of `like` (a state built from the same spec, or its eval_shape)."""
        if step not in self.steps():
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.steps()}")
        abstract = jax.tree.map(_restore_target, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
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
