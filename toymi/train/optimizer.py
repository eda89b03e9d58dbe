"""The one optimiser factory, from plain values: AdamW with a learning-rate schedule, optionally clipped.

AdamW's numbers (lr, weight decay, betas, eps) live in the optimiser *state* (`optax.inject_hyperparams`), not in
the compiled update: the schedule's shape is a separate factor that peaks at 1. So one compiled update serves every
member of an ensemble, each with its own learning rate and weight decay, and a checkpoint records them.

Nothing here knows the TOML spec: `toymi.experiment.make_optimizer(train_config)` maps a `[train]` section onto
`adamw`, and SAEs and SPD call `adamw` with their own numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import optax

# `adamw` arguments that live in the optimiser state (name → optax's name), so ensemble members may differ in them.
STATE_HYPERPARAMS = {"lr": "learning_rate", "weight_decay": "weight_decay", "beta1": "b1", "beta2": "b2",
                     "eps": "eps"}
Schedule = Literal["constant", "cosine", "linear", "quarter_cosine"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)  # the names `schedule` accepts


def schedule_shape(steps: int, schedule: Schedule = "constant", warmup_steps: int = 0,
                   final_lr_frac: float = 0.0) -> optax.Schedule:
    """The learning rate's course over `steps` as a factor of `lr`: linear warmup from 0 over `warmup_steps`, then
    constant, or a decay to `final_lr_frac` at `steps`: half a cosine period (`cosine`), a straight line (`linear`),
    or a quarter period (`quarter_cosine`: `cos(π/2 · t)`, the schedule the SPD paper's code called "cosine", which
    stays higher for longer and falls fastest at the end)."""
    decay_steps = max(steps - warmup_steps, 1)
    after = {
        "constant": optax.constant_schedule(1.0),
        "cosine": optax.cosine_decay_schedule(1.0, decay_steps, alpha=final_lr_frac),
        "linear": optax.linear_schedule(1.0, final_lr_frac, decay_steps),
        "quarter_cosine": _quarter_cosine(decay_steps, final_lr_frac),
    }[schedule]
    if warmup_steps == 0:
        return after
    warmup = optax.linear_schedule(0.0, 1.0, warmup_steps)
    return optax.join_schedules([warmup, after], [warmup_steps])


def _quarter_cosine(decay_steps: int, final: float) -> optax.Schedule:
    def shape(step):
        t = jnp.minimum(step, decay_steps) / decay_steps
        return final + (1.0 - final) * jnp.cos(0.5 * jnp.pi * t)
    return shape


def adamw(*, steps: int, lr: float = 1e-3, weight_decay: float = 0.0, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, schedule: Schedule = "constant", warmup_steps: int = 0, final_lr_frac: float = 0.0,
          grad_clip: float = 0.0) -> optax.GradientTransformation:
    """AdamW with decoupled weight decay on every parameter (as torch.optim.AdamW), optionally clipped.

    The update is `-lr · shape(step) · (adam(g) + weight_decay · θ)`, i.e. AdamW at learning rate `lr · shape(step)`
    (decoupled decay is scaled by the learning rate in optax and torch alike); `shape` is `schedule_shape(steps,
    schedule, warmup_steps, final_lr_frac)`. `grad_clip > 0` clips gradients by global norm first.
    """
    # as floats: an integer (`--set train.weight_decay=0`) would be an int32 leaf of the state, so another compiled
    # program than the same run with 0.0 (or any other member's float)
    opt = optax.inject_hyperparams(optax.adamw)(
        learning_rate=float(lr), b1=float(beta1), b2=float(beta2), eps=float(eps), weight_decay=float(weight_decay))
    parts = [opt, optax.scale_by_schedule(schedule_shape(steps, schedule, warmup_steps, final_lr_frac))]
    if grad_clip > 0:
        parts.insert(0, optax.clip_by_global_norm(grad_clip))
    return optax.chain(*parts)


def hyperparams(opt_state) -> dict[str, jax.Array]:
    """The AdamW numbers held in `opt_state`, by `adamw` argument name (arrays: one per member for an ensemble)."""
    for node in jax.tree.leaves(opt_state, is_leaf=_is_injected):
        if _is_injected(node):
            return {name: node.hyperparams[inner] for name, inner in STATE_HYPERPARAMS.items()}
    raise ValueError("this optimiser state holds no injected AdamW hyperparameters (not from adamw)")


def with_hyperparams(opt_state, values: Mapping[str, float]):
    """`opt_state` with some AdamW numbers replaced (keys: `adamw` argument names such as `lr`, `weight_decay`)."""
    unknown = sorted(set(values) - set(STATE_HYPERPARAMS))
    if unknown:
        raise KeyError(f"{unknown} are not optimiser-state hyperparameters; those are {sorted(STATE_HYPERPARAMS)}")

    def replace(node):
        if not _is_injected(node):
            return node
        new = dict(node.hyperparams)
        for name, value in values.items():
            old = new[STATE_HYPERPARAMS[name]]
            new[STATE_HYPERPARAMS[name]] = jnp.asarray(value, jnp.result_type(old))
        return node._replace(hyperparams=new)

    return jax.tree.map(replace, opt_state, is_leaf=_is_injected)


def _is_injected(node) -> bool:
    # optax's inject_hyperparams state (its class name changed across optax versions; both carry `hyperparams`)
    return isinstance(node, tuple) and hasattr(node, "hyperparams") and hasattr(node, "inner_state")
