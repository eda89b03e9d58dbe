"""Ensembles: N members (seeds × hyperparameters × task splits) as one stacked `TrainState` and one stacked task,
trained by one vmapped, compiled program.

Every leaf of the ensemble's state and task has a leading member axis. Members share the model's structure and the
compiled update; they differ only in array values: initial weights (seed, init scale), the AdamW numbers in the
optimiser state, the sampling key, and the task's arrays (`Task.stack`). Which members a sweep has is the
experiment's business (`toymi.experiment.ensemble.init_ensemble`); this is the engine part, from plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from toymi.tasks import Task
from toymi.train.optimizer import with_hyperparams
from toymi.train.state import TrainState, init_state
from toymi.train.step import Loss, evaluate, loss_fn, run_steps
from toymi.trees import stack, unstack


def init_members(model_configs: Sequence, seeds: Sequence[int], optimizer: optax.GradientTransformation,
                 hyperparams: Mapping[str, Sequence[float]]) -> TrainState:
    """The stacked initial state of members `i` (model config `model_configs[i]`, seed `seeds[i]`), with each
    member's AdamW numbers (`hyperparams`: `adamw` argument name → one value per member) in its optimiser state.

    Members with the same model config initialise in one vmap over their seeds. A member whose config differs from
    the first one's only in array values (its init scale) is built under its own config and then put into the first
    member's structure.
    """
    structure = None
    states: list[TrainState | None] = [None] * len(model_configs)
    groups: dict[object, list[int]] = {}
    for i, config in enumerate(model_configs):
        groups.setdefault(config, []).append(i)
    for config, members in groups.items():
        group_seeds = jnp.asarray([seeds[i] for i in members], jnp.uint32)
        group = eqx.filter_jit(eqx.filter_vmap(lambda seed: init_state(config, optimizer, seed)))(group_seeds)
        if structure is None:
            structure = jax.tree.structure(unstack(group, 0))
        leaves = jax.tree.leaves(group)
        for j, i in enumerate(members):
            states[i] = jax.tree.unflatten(structure, [leaf[j] for leaf in leaves])
    state = stack(states)
    values = {name: np.asarray(column, np.float32) for name, column in hyperparams.items()}
    return eqx.tree_at(lambda s: s.opt_state, state, with_hyperparams(state.opt_state, values))


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
