"""The pure training step (one `update` on a freshly sampled batch), a `lax.scan` of many steps per compiled call,
and the evaluation function."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import optax
from jaxtyping import Array, Float

from toymi.tasks import Task
from toymi.train.state import TrainState
from toymi.train.update import update


def loss_fn(model: eqx.Module, task: Task, batch) -> Float[Array, ""]:
    """The task's own objective."""
    return task.loss(model, batch)


Loss = Callable[[eqx.Module, Task, object], Float[Array, ""]]


def train_step(
    state: TrainState, task: Task, optimizer: optax.GradientTransformation, loss: Loss = loss_fn,
    place_batch: Callable | None = None,
) -> tuple[TrainState, Array]:
    """One optimiser step on `task.train_batch`; returns the new state and the loss before the update.

    `loss(model, task, batch)` defaults to the task's own objective (`task.loss`); any other (e.g. with a penalty on
    activations captured by `model.run`) works the same way. `place_batch`, if given, maps the batch before use (a
    sharding constraint that spreads its examples over devices: `toymi.train.sharding`).
    """
    key, batch_key = jax.random.split(state.key)
    batch = task.train_batch(batch_key)
    if place_batch is not None:
        batch = place_batch(batch)
    model, opt_state, value, _ = update(lambda m, b: (loss(m, task, b), None), optimizer, state.model,
                                        state.opt_state, batch)
    return TrainState(step=state.step + 1, model=model, opt_state=opt_state, key=key), value


def run_steps(state: TrainState, task: Task, optimizer: optax.GradientTransformation, n_steps: int,
              loss: Loss = loss_fn, place_batch: Callable | None = None) -> tuple[TrainState, Float[Array, " n"]]:
    """`n_steps` steps in one `lax.scan` (not compiled by itself: `make_train_chunk` and ensembles wrap it)."""

    def body(carry, _):
        return train_step(carry, task, optimizer, loss, place_batch)

    return jax.lax.scan(body, state, length=n_steps)


def make_train_chunk(optimizer: optax.GradientTransformation, n_steps: int, loss: Loss = loss_fn,
                     place_batch: Callable | None = None) -> Callable:
    """A compiled `(state, task) -> (state, losses[n_steps])` running `n_steps` steps in one `lax.scan`
    (`place_batch`: see `train_step`)."""

    @eqx.filter_jit
    def train_chunk(state: TrainState, task: Task) -> tuple[TrainState, Float[Array, " n_steps"]]:
        return run_steps(state, task, optimizer, n_steps, loss, place_batch)

    return train_chunk


@eqx.filter_jit
def evaluate(model: eqx.Module, task: Task) -> dict[str, Array]:
    """Task metrics on every eval set, flattened as `{set}_{metric}` (e.g. `test_loss`)."""
    out = {}
    for name, batch in task.eval_batches().items():
        for metric, value in task.evaluate(model, batch).items():
            out[f"{name}_{metric}"] = value
    return out
