"""The host loop: compiled chunks of steps, then log, check for divergence and checkpoint between them.

A run directory holds `spec.toml` (the resolved spec), `metrics.jsonl`, `checkpoints/` and `figures/`.
Resuming restores the latest checkpoint and replays the same compiled chunks, so the final weights equal an
uninterrupted run's bit for bit on the same backend.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from toymi.errors import RunDirectoryError, TrainingDiverged
from toymi.spec import Spec, TrainConfig, spec_differences
from toymi.train import metrics_log
from toymi.train.checkpoints import Checkpoints
from toymi.train.optimizer import make_optimizer, program_config
from toymi.train.sharding import barrier, batch_placement, replicate, to_host
from toymi.train.state import TrainState, init_state, step_of
from toymi.train.step import evaluate, make_train_chunk


def train(spec: Spec, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          mesh: Mesh | None = None) -> TrainState:
    """Train `spec` into `run_dir`; returns the final `TrainState`.

    **Arguments:**

    - `spec`: the experiment.
    - `run_dir`: where the run lives. Must be new or empty unless `resume`.
    - `resume`: continue from the latest checkpoint in `run_dir` (its spec must match, except `train.steps`).
    - `progress`: draw a progress bar.
    - `mesh`: train data-parallel: state and task on every device of this `(members, batch)` mesh
      (`toymi.train.sharding.ensemble_mesh(jax.device_count())`, across processes after `jax.distributed.initialize`),
      each batch's examples split over its `batch` axis.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    if resume:
        check_same_spec(spec, run_dir / "spec.toml")
    state, task = init_state(spec.model, make_optimizer(spec.train), spec.train.seed), spec.build_task()
    chunk = train_chunk_for(spec.train)
    if mesh is not None:
        state, task = replicate((state, task), mesh)
        chunk = make_train_chunk(make_optimizer(program_config(spec.train)), spec.train.eval_every,
                                 place_batch=batch_placement(mesh))
    return host_loop(run_dir, {"spec.toml": spec.to_toml()}, state, task, chunk, evaluate, spec.train,
                     resume=resume, progress=progress, on_nonfinite=_stop)


def train_chunk_for(cfg: TrainConfig) -> Callable:
    """The compiled chunk of `cfg.eval_every` steps that `train` runs, shared by every config with the same
    `program_config`: a second run that differs in seed or AdamW's numbers (which live in the state it is given)
    reuses the first one's compiled program instead of compiling it again."""
    return _train_chunk(program_config(cfg))


@functools.lru_cache(maxsize=16)
def _train_chunk(program: TrainConfig) -> Callable:
    return make_train_chunk(make_optimizer(program), program.eval_every)


def host_loop(run_dir: Path, files: dict[str, str], state, task, train_chunk: Callable, evaluate_fn: Callable,
              cfg: TrainConfig, *, resume: bool, progress: bool, on_nonfinite: Callable) -> TrainState:
    """Chunks of compiled steps; between them, log metrics, check the losses, checkpoint, draw progress.

    Shared by single runs and ensembles (whose state, task, metrics and losses carry a leading member axis).
    `files` (name → text) are written into `run_dir` once the run starts; `on_nonfinite(losses, step, run_dir,
    checkpoints)` decides what a NaN or inf loss does (a single run stops; an ensemble notes the member and goes on).
    """
    log_path = run_dir / "metrics.jsonl"
    check_run_dir(run_dir, resume)
    barrier("toymi: run directory checked")  # multi-process: no process creates it before every one has checked
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)

    with Checkpoints(run_dir / "checkpoints") as checkpoints:
        if resume:
            start = checkpoints.latest()
            if start is None:
                raise RunDirectoryError(f"{run_dir} has no checkpoint to resume from")
            state = checkpoints.restore(start, like=state)
            if jax.process_index() == 0:
                metrics_log.truncate_after(log_path, start)
        else:
            start = 0
            _log(log_path, state, task, evaluate_fn, elapsed=0.0)
            checkpoints.save(state)
        if jax.process_index() == 0:  # multi-host: one writer (orbax coordinates checkpoints itself)
            for name, text in files.items():
                (run_dir / name).write_text(text)

        bar = tqdm(total=cfg.steps, initial=start, disable=not progress, unit="step", dynamic_ncols=True)
        began = time.perf_counter()
        step = start
        while step < cfg.steps:
            new_state, losses = train_chunk(state, task)
            losses = to_host(losses)
            if not np.isfinite(losses).all():
                try:
                    on_nonfinite(losses, step, run_dir, checkpoints)
                except BaseException:
                    bar.close()
                    raise
            state, step = new_state, step + cfg.eval_every
            row = _log(log_path, state, task, evaluate_fn, elapsed=time.perf_counter() - began)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                checkpoints.save(state)
            bar.update(cfg.eval_every)
            bar.set_postfix({k: _short(v) for k, v in row.items() if k.endswith("_loss")})
        bar.close()
    return state


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run never writes into a directory that holds something (checked before any expensive work)."""
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise RunDirectoryError(f"{run_dir} already holds a run; pass --resume to continue it or --out elsewhere")


def _stop(losses: np.ndarray, step: int, run_dir: Path, checkpoints: Checkpoints) -> None:
    bad = int(np.argmin(np.isfinite(losses)))
    raise TrainingDiverged(
        f"loss became {losses[bad]} at step {step + bad} (the update from step {step + bad} to "
        f"{step + bad + 1}); the last good checkpoint is step {checkpoints.latest()} in {run_dir}"
    )


def _log(path: Path, state: TrainState, task, evaluate_fn: Callable, elapsed: float) -> dict:
    values = to_host(evaluate_fn(state.model, task))
    row = {"step": step_of(state), **{k: np.asarray(v).tolist() for k, v in values.items()},
           "elapsed_s": round(elapsed, 3)}
    if jax.process_index() == 0:
        metrics_log.append(path, row)
    return row


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else f"{np.nanmedian(value):.3g} (median)"


def check_same_spec(spec: Spec, spec_path: Path) -> None:
    """Refuse a run directory whose spec differs from `spec` in anything but `train.steps` (resume or reuse it)."""
    if not spec_path.exists():
        raise RunDirectoryError(f"{spec_path} does not exist")
    saved = Spec.load(spec_path)
    if dataclasses.replace(saved.train, steps=spec.train.steps) != spec.train or (saved.task, saved.model) != (
        spec.task, spec.model
    ):
        differences = spec_differences(saved.to_dict(), spec.to_dict()) or ["(values equal as written, unequal as "
                                                                              "parsed)"]
        raise RunDirectoryError(
            f"the spec differs from the run's {spec_path} (only train.steps may differ, to resume or extend it): "
            + "; ".join(differences) + ". Pass the same --set options as the run, or another --out"
        )


def abstract_state(spec: Spec) -> TrainState:
    """The shapes and dtypes of `spec`'s TrainState, without computing it (a restore target)."""
    return eqx.filter_eval_shape(init_state, spec.model, make_optimizer(spec.train), spec.train.seed)
