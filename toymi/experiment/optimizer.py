"""The `[train]` section's optimiser: a thin adapter from `TrainConfig` onto the engine's plain-value `adamw`."""

from __future__ import annotations

import dataclasses

import optax

from toymi.experiment.spec import TrainConfig
from toymi.train.optimizer import STATE_HYPERPARAMS, adamw, schedule_shape

# TrainConfig fields that `adamw` takes (the rest drive the host loop or the initialisation).
OPTIMIZER_FIELDS = ("steps", *STATE_HYPERPARAMS, "schedule", "warmup_steps", "final_lr_frac", "grad_clip")


def optimizer_values(cfg: TrainConfig) -> dict[str, object]:
    """The plain values `adamw` takes, read off `cfg`."""
    return {name: getattr(cfg, name) for name in OPTIMIZER_FIELDS}


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """`toymi.train.optimizer.adamw` with `cfg`'s numbers (AdamW, schedule, warmup, clipping)."""
    return adamw(**optimizer_values(cfg))


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """The learning rate at each step: `lr * schedule_shape(...)(step)`."""
    shape = schedule_shape(cfg.steps, cfg.schedule, cfg.warmup_steps, cfg.final_lr_frac)
    return lambda step: cfg.lr * shape(step)


def program_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with what does not change the compiled training step reset to the defaults: the AdamW numbers (they
    live in the optimiser state) and the seed (it lives in the train state). Two configs with the same
    `program_config` train with one compiled program."""
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    return dataclasses.replace(cfg, seed=defaults["seed"], **{name: defaults[name] for name in STATE_HYPERPARAMS})
