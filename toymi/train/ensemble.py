"""Ensembles: N members (seeds × hyperparameters × task splits) as one stacked `TrainState` and one stacked task,
trained by one vmapped, compiled program.

Every leaf of the ensemble's state and task has a leading member axis. Members share the model's structure and the
compiled update; they differ only in array values: initial weights (seed, init scale), the AdamW numbers in the
optimiser state, the sampling key, and the task's arrays (`Task.stack`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from toymi.spec import Spec
from toymi.tasks import Task
from toymi.train.optimizer import STATE_HYPERPARAMS, make_optimizer, with_hyperparams
from toymi.train.state import TrainState, init_state
from toymi.train.step import Loss, evaluate, loss_fn, run_steps
from toymi.trees import stack, unstack


def init_ensemble(specs: Sequence[Spec]) -> tuple[TrainState, Task, optax.GradientTransformation]:
    """The stacked initial state and task of `specs`' members, and the optimiser all of them update with.

    Members with the same model config initialise in one vmap over their seeds. A member whose `init_scale` differs
    from the first member's is built under its own config and then put into the first member's structure (its
    `model.config` describes the architecture, which members share; its spec records its init scale).
    """
    _check_compatible(specs)
    optimizer = make_optimizer(specs[0].train)
    structure = None
    states: list[TrainState | None] = [None] * len(specs)
    groups: dict[object, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(spec.model, []).append(i)
    for config, members in groups.items():
        seeds = jnp.asarray([specs[i].train.seed for i in members], jnp.uint32)
        group = eqx.filter_jit(eqx.filter_vmap(lambda seed: init_state(config, optimizer, seed)))(seeds)
        if structure is None:
            structure = jax.tree.structure(unstack(group, 0))
        leaves = jax.tree.leaves(group)
        for j, i in enumerate(members):
            states[i] = jax.tree.unflatten(structure, [leaf[j] for leaf in leaves])
    state = stack(states)
    values = {name: np.array([getattr(s.train, name) for s in specs], np.float32) for name in STATE_HYPERPARAMS}
    state = eqx.tree_at(lambda s: s.opt_state, state, with_hyperparams(state.opt_state, values))
    return state, stack_tasks(specs), optimizer


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


def make_ensemble_chunk(optimizer: optax.GradientTransformation, n_steps: int, loss: Loss = loss_fn,
                        place_batch: Callable | None = None, spmd_axis_name: str | None = None) -> Callable:
    """A compiled `(states, tasks) -> (states, losses[member, n_steps])`: every member's `n_steps` steps at once.

    `place_batch` and `spmd_axis_name` spread the work over a device mesh (`toymi.train.sharding`).
    """

    def member(state: TrainState, task: Task):
        return run_steps(state, task, optimizer, n_steps, loss, place_batch)

    return eqx.filter_jit(jax.vmap(member, spmd_axis_name=spmd_axis_name))


@eqx.filter_jit
def evaluate_ensemble(models, tasks: Task) -> dict[str, jax.Array]:
    """`evaluate` for every member: `{metric: [member]}`."""
    return jax.vmap(evaluate)(models, tasks)
