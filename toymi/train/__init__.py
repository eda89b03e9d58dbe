"""The training engine, from plain values: state, the one pure update step, the optimiser factory, the compiled
chunk of steps, the host loop and checkpoints. Nothing here reads TOML specs or sweeps (`toymi.experiment` does:
`toymi.experiment.train(spec, run_dir)`)."""

from toymi.errors import RunDirectoryError, TrainingDiverged
from toymi.train.checkpoints import Checkpoints
from toymi.train.loop import Cadence, host_loop
from toymi.train.optimizer import adamw
from toymi.train.state import TrainState, init_state
from toymi.train.step import evaluate, loss_fn, make_train_chunk, train_step
from toymi.train.update import update

__all__ = ["Cadence", "Checkpoints", "RunDirectoryError", "TrainState", "TrainingDiverged", "adamw", "evaluate",
           "host_loop", "init_state", "loss_fn", "make_train_chunk", "train_step", "update"]
