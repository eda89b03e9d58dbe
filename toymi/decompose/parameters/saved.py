"""An SPD decomposition of a run's model, kept with the run: `spd_for_run(run)` trains one (`defaults.spd_defaults`
for the model, at the steps and batch asked for) and writes it into `RUN/spd/`; the next call with the same settings
on the same model step loads it instead (`toymi view RUN --spd` a second time is seconds).

Sealed as `toymi.sealed` keeps them: the `SPDParams`' arrays (`spd.<digest>.eqx`) and `spd.json` (the model step, every setting it
was trained with, the training time, the final losses). A decomposition belongs to one model step and one set of
settings: once the run has trained further, or for other settings, it is trained anew.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from toymi.decompose.parameters.defaults import spd_defaults
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.spd import (SPDConfig, init_params, spd_hyper, stack_spd_hypers, task_output,
                                              train_spd)
from toymi.decompose.parameters.targets import model_targets
from toymi.sealed import kept_for, read_sealed, write_sealed

DIRECTORY = "spd"
STEM = "spd"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class SavedSPD:
    """One member's decomposition of a run's model and what it was trained with (`settings`: `SPDConfig`'s fields
    plus `importance_coef`, `p`, `seed`)."""

    params: SPDParams
    settings: dict
    model_step: int
    seconds: float
    final_losses: dict
    loaded_from: str | None = None


def spd_settings(model: eqx.Module, steps: int, batch_size: int | None = None, seed: int = 0, task=None) -> dict:
    """The settings `spd_for_run` trains `model`'s decomposition with, as plain JSON values: the model's
    `spd_defaults` (batch size `batch_size` instead, where given), `steps` steps, a 200-step faithfulness warmup with
    weight decay 0.1 (the reference code's TMS, residual-MLP and induction configs), and `seed`; the outputs
    compared as the model's `task` compares them (`task_output`; without a task, `SPDConfig`'s guess by kind)."""
    output = {} if task is None else task_output(task, model.kind)
    d = spd_defaults(model, output.get("output_loss", "auto"))
    config = SPDConfig(C=d.C, steps=steps, batch_size=batch_size or d.batch_size, lr=d.lr,
                       faithfulness_coef=d.faithfulness_coef, faithfulness_warmup_steps=200,
                       faithfulness_warmup_weight_decay=0.1, **output)
    settings = dataclasses.asdict(config) | {"importance_coef": d.importance_coef, "p": d.p, "seed": seed}
    return json.loads(json.dumps(settings))  # tuples as lists: what a saved JSON holds, so the two compare equal


def _config(settings: dict) -> SPDConfig:
    fields = {f.name for f in dataclasses.fields(SPDConfig)}
    config = {k: v for k, v in settings.items() if k in fields}
    for key in ("targets", "output_positions"):  # tuples in the config, lists in JSON
        if config.get(key) is not None:
            config[key] = tuple(config[key])
    return SPDConfig(**config)


def train_saved_spd(model: eqx.Module, sample, settings: dict, model_step: int) -> SavedSPD:
    """Train one decomposition of `model` with `settings` (`spd_settings`), inputs from `sample(key, n)`."""
    start = time.perf_counter()
    hypers = stack_spd_hypers([spd_hyper(settings["importance_coef"], settings["p"])])
    trained = train_spd(model, sample, _config(settings), hypers, jnp.asarray([settings["seed"]]))
    losses = {k: float(v[0, -1]) for k, v in trained.losses.items()}  # the host copy waits for the run
    return SavedSPD(trained.member(0), settings, model_step, time.perf_counter() - start, losses)


def save_spd(run_dir: str | Path, saved: SavedSPD) -> Path:
    """Write `saved` into `run_dir/spd/`, replacing what was there; returns that directory."""
    meta = {"format": FORMAT, "model_step": int(saved.model_step), "settings": saved.settings,
            "seconds": saved.seconds, "final_losses": saved.final_losses}
    return write_sealed(Path(run_dir) / DIRECTORY, STEM, saved.params, meta)


def load_spd(run_dir: str | Path, model: eqx.Module, model_step: int, settings: dict | None = None
             ) -> SavedSPD | None:
    """The decomposition saved in `run_dir/spd/` if it was trained on `model_step` (with `settings`, when given:
    any otherwise) and its arrays are the ones its JSON seals; else None."""
    where = Path(run_dir) / DIRECTORY

    def like(meta: dict) -> SPDParams:
        config = _config(meta["settings"])
        return eqx.filter_eval_shape(init_params, model, model_targets(model, config.targets), config,
                                     jax.random.PRNGKey(0))

    found = read_sealed(where, STEM, kept_for(FORMAT, model_step, settings), like)
    if found is None:
        return None
    params, meta = found
    return SavedSPD(params, meta["settings"], meta["model_step"], meta["seconds"], meta["final_losses"], str(where))


def task_input_sampler(task, kind: str):
    """`sample(key, n)`: `n` fresh task inputs as a model of `kind` reads them (`Task.model_inputs`: an AND-gate
    transformer reads its feature vectors as tokens)."""
    return lambda key, n: task.model_inputs(task.sample(key, n), kind)


def spd_for_run(run, steps: int = 4000, batch_size: int | None = None, seed: int = 0) -> SavedSPD:
    """A decomposition of the run's newest model (`spd_settings`): loaded from `RUN/spd/` where one was saved for
    this model step and these settings, else trained now and saved there."""
    settings = spd_settings(run.model, steps, batch_size, seed, run.task)
    saved = load_spd(run.directory, run.model, run.model_step, settings)
    if saved is None:
        saved = train_saved_spd(run.model, task_input_sampler(run.task, run.model.kind), settings, run.model_step)
        save_spd(run.directory, saved)
    return saved
