"""A sweep's members as one ensemble: their stacked initial state and task, from their specs.

Members must share everything that shapes the compiled program; `init_ensemble` checks that and hands the rest
(model configs, seeds, AdamW numbers) to the engine's `toymi.train.ensemble.init_members`.
"""

from __future__ import annotations

from collections.abc import Sequence

import optax

from toymi.experiment.optimizer import make_optimizer
from toymi.experiment.spec import Spec
from toymi.tasks import Task
from toymi.train.ensemble import abstract_members, init_members
from toymi.train.optimizer import STATE_HYPERPARAMS
from toymi.train.state import TrainState


def init_ensemble(specs: Sequence[Spec]) -> tuple[TrainState, Task, optax.GradientTransformation]:
    """The stacked initial state and task of `specs`' members, and the optimiser all of them update with.

    A member whose `init_scale` differs from the first member's is built under its own config and then put into the
    first member's structure (its `model.config` describes the architecture, which members share; its spec records
    its init scale).
    """
    _check_compatible(specs)
    optimizer = make_optimizer(specs[0].train)
    values = {name: [getattr(s.train, name) for s in specs] for name in STATE_HYPERPARAMS}
    state = init_members([s.model for s in specs], [s.train.seed for s in specs], optimizer, values)
    return state, stack_tasks(specs), optimizer


def abstract_ensemble(specs: Sequence[Spec]) -> TrainState:
    """The shapes and dtypes of `init_ensemble(specs)`'s state, without computing it (a checkpoint's restore target).
    """
    _check_compatible(specs)
    first = specs[0]
    return abstract_members(first.model, first.train.seed, make_optimizer(first.train), len(specs))


def stack_tasks(specs: Sequence[Spec]) -> Task:
    """Each member's task (built once per distinct setting) stacked by the task class's own `stack`."""
    built: dict[str, Task] = {}
    tasks = []
    for spec in specs:
        key = repr(sorted(spec.task.items()))
        if key not in built:
            built[key] = spec.build_task()
        tasks.append(built[key])
    return type(tasks[0]).stack(tasks)


def _check_compatible(specs: Sequence[Spec]) -> None:
    if not specs:
        raise ValueError("an ensemble needs at least one member")
    first = specs[0]
    shared = {name: getattr(first.train, name) for name in vars(first.train)
              if name not in STATE_HYPERPARAMS and name != "seed"}
    for spec in specs[1:]:
        differ = [name for name, value in shared.items() if getattr(spec.train, name) != value]
        if differ:
            raise ValueError(f"ensemble members must share train settings {differ} (only seed and "
                             f"{sorted(STATE_HYPERPARAMS)} may differ)")
        if type(spec.model) is not type(first.model) or _architecture(spec.model) != _architecture(first.model):
            raise ValueError("ensemble members must share the model's architecture (only init_scale may differ)")
        if spec.task["name"] != first.task["name"]:
            raise ValueError("ensemble members must train the same task")


def _architecture(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k != "init_scale"}
