"""Experiments: what to train, from TOML specs and sweeps, and training them into run directories.

Above the engine (`toymi.train`, which takes plain values and knows nothing of TOML or sweeps), below loading
(`toymi.run`). `Spec` / `TrainConfig` (a `[task]`/`[model]`/`[train]` file), `Sweep` (a grid of specs as one
ensemble), `train(spec, dir)` and `train_sweep(sweep, dir)`, and `make_optimizer(train_config)`.
"""

from toymi.experiment.ensemble import init_ensemble, stack_tasks
from toymi.experiment.optimizer import learning_rate_schedule, make_optimizer
from toymi.experiment.spec import Spec, TrainConfig, apply_overrides, load_saved
from toymi.experiment.sweep import Sweep
from toymi.experiment.sweep_training import train_sweep
from toymi.experiment.training import train

__all__ = ["Spec", "Sweep", "TrainConfig", "apply_overrides", "init_ensemble", "learning_rate_schedule",
           "load_saved", "make_optimizer", "stack_tasks", "train", "train_sweep"]
