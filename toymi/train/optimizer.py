"""The optimiser a `TrainConfig` describes, built from optax pieces.

AdamW's numbers (lr, weight decay, betas, eps) live in the optimiser *state* (`optax.inject_hyperparams`), not in
the compiled update: the schedule's shape is a separate factor that peaks at 1. So one compiled update serves every
member of an ensemble, each with its own learning rate and weight decay, and a checkpoint records them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from toymi.spec import TrainConfig

# TrainConfig fields that live in the optimiser state, so ensemble members may differ in them.
STATE_HYPERPARAMS = {"lr": "learning_rate", "weight_decay": "weight_decay", "beta1": "b1", "beta2": "b2",
                     "eps": "eps"}


def schedule_shape(cfg: TrainConfig) -> optax.Schedule:
    """The learning rate's course over training as a factor of `lr`: linear warmup from 0 over `warmup_steps`, then
    constant, or a cosine / linear decay to `final_lr_frac` at `steps`."""
    decay_steps = max(cfg.steps - cfg.warmup_steps, 1)
    after = {
        "constant": optax.constant_schedule(1.0),
        "cosine": optax.cosine_decay_schedule(1.0, decay_steps, alpha=cfg.final_lr_frac),
        "linear": optax.linear_schedule(1.0, cfg.final_lr_frac, decay_steps),
    }[cfg.schedule]
    if cfg.warmup_steps == 0:
        return after
    warmup = optax.linear_schedule(0.0, 1.0, cfg.warmup_steps)
    return optax.join_schedules([warmup, after], [cfg.warmup_steps])


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """The learning rate at each step: `lr * schedule_shape(cfg)(step)`."""
    shape = schedule_shape(cfg)
    return lambda step: cfg.lr * shape(step)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW with decoupled weight decay on every parameter (as torch.optim.AdamW), optionally clipped.

    The update is `-lr · shape(step) · (adam(g) + weight_decay · θ)`, i.e. AdamW at learning rate `lr · shape(step)`
    (decoupled decay is scaled by the learning rate in optax and torch alike).
    """
    adamw = optax.inject_hyperparams(optax.adamw)(
        learning_rate=cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    parts = [adamw, optax.scale_by_schedule(schedule_shape(cfg))]
    if cfg.grad_clip > 0:
        parts.insert(0, optax.clip_by_global_norm(cfg.grad_clip))
    return optax.chain(*parts)


def program_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with what does not change the compiled training step reset to the defaults: the AdamW numbers (they
    live in the optimiser state) and the seed (it lives in the train state). Two configs with the same
    `program_config` train with one compiled program."""
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    return dataclasses.replace(cfg, seed=defaults["seed"], **{name: defaults[name] for name in STATE_HYPERPARAMS})


def hyperparams(opt_state) -> dict[str, jax.Array]:
    """The AdamW numbers held in `opt_state`, by `TrainConfig` name (arrays: one per member for an ensemble)."""
    for node in jax.tree.leaves(opt_state, is_leaf=_is_injected):
        if _is_injected(node):
            return {name: node.hyperparams[inner] for name, inner in STATE_HYPERPARAMS.items()}
    raise ValueError("this optimiser state holds no injected AdamW hyperparameters (not from make_optimizer)")


def with_hyperparams(opt_state, values: Mapping[str, float]):
    """`opt_state` with some AdamW numbers replaced (keys: `TrainConfig` names such as `lr`, `weight_decay`)."""
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
