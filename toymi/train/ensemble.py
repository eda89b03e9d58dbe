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
import numpy as np
import optax

from toymi.tasks import Task
from toymi.train.optimizer import with_hyperparams
from toymi.train.state import TrainState, init_state
from toymi.train.step import Loss, evaluate, loss_fn, run_steps
from toymi.trees import stack_on_host


def init_members(model_configs: Sequence, seeds: Sequence[int], optimizer: optax.GradientTransformation,
                 hyperparams: Mapping[str, Sequence[float]]) -> TrainState:
    """The stacked initial state of members `i` (model config `model_configs[i]`, seed `seeds[i]`), with each
    member's AdamW numbers (`hyperparams`: `adamw` argument name → one value per member) in its optimiser state.

    Each member is built on its own by `init_state`, exactly as a single run of its config and seed starts, and the
    members are stacked on the host: member i of a sweep starts from the weights `toymi train` would give it. (A
    vmapped init compiles one more program, ~10 CPU seconds even for a tiny transformer, and its draws differ from
    the lone init's in the last bit.) A member whose config differs from the first one's only in array values (its
    init scale) is built under its own config and then put into the first member's structure.
    """
    first = init_state(model_configs[0], optimizer, seeds[0])
    structure = jax.tree.structure(first)
    rest = [jax.tree.unflatten(structure, jax.tree.leaves(init_state(config, optimizer, seed)))
            for config, seed in zip(model_configs[1:], seeds[1:], strict=True)]
    state = stack_on_host([first, *rest])
    values = {name: np.asarray(column, np.float32) for name, column in hyperparams.items()}
    return eqx.tree_at(lambda s: s.opt_state, state, with_hyperparams(state.opt_state, values))


def abstract_members(model_config, seed: int, optimizer: optax.GradientTransformation, n_members: int) -> TrainState:
    """The shapes and dtypes of `init_members`' state for `n_members` members of `model_config`'s architecture,
    without computing it (a checkpoint's restore target): one member's, with the member axis in front."""
    one = eqx.filter_eval_shape(init_state, model_config, optimizer, seed)
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct((n_members, *leaf.shape), leaf.dtype), one)


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
