"""The host loop: compiled chunks of steps, then log, check for divergence and checkpoint between them.

A run directory holds `spec.toml` (the resolved spec), `metrics.jsonl`, `checkpoints/` and `figures/`.
Resuming restores the latest checkpoint and replays the same compiled chunks, so the final weights equal an
uninterrupted run's bit for bit on the same backend.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from toymi.errors import RunDirectoryError, TrainingDiverged, TrainingInterrupted
from toymi.spec import Spec, TrainConfig, load_saved, spec_differences
from toymi.train import metrics_log, run_lock
from toymi.train.checkpoints import Checkpoints
from toymi.train.integrity import write_atomically
from toymi.train.optimizer import make_optimizer, program_config
from toymi.train.sharding import barrier, batch_placement, replicate, to_host
from toymi.train.state import TrainState, init_state, step_of
from toymi.train.step import evaluate, make_train_chunk
from toymi.train.stop_signals import StopOnSignal


def train(spec: Spec, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          mesh: Mesh | None = None) -> TrainState:
    """Train `spec` into `run_dir`; returns the final `TrainState`.

    **Arguments:**

    - `spec`: the experiment.
    - `run_dir`: where the run lives. Must be new or empty unless `resume`.
    - `resume`: continue from the newest intact checkpoint in `run_dir` (its spec must match, except `train.steps`,
      which may only grow). An unfinished start (interrupted before its first checkpoint) starts again.
    - `progress`: draw a progress bar.
    - `mesh`: train data-parallel: state and task on every device of this `(members, batch)` mesh
      (`toymi.train.sharding.ensemble_mesh(jax.device_count())`, across processes after `jax.distributed.initialize`),
      each batch's examples split over its `batch` axis.

    Raises `TrainingInterrupted` when SIGINT or SIGTERM stopped it (at a safe point, resumable).
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    if resume and not run_lock.is_unfinished(run_dir):
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
    The directory is locked for the whole run, and marked unfinished until its files and checkpoint 0 exist.
    """
    log_path = run_dir / "metrics.jsonl"
    check_run_dir(run_dir, resume)
    unfinished = run_lock.is_unfinished(run_dir)  # decided by every process before any of them writes
    barrier("toymi: run directory checked")  # multi-process: no process creates it before every one has checked
    with run_lock.locked(run_dir), StopOnSignal() as stop:
        resume = resume and not unfinished  # an interrupted start: nothing there to keep, start again
        _prepare(run_dir, unfinished=unfinished, fresh=not resume)
        with Checkpoints(run_dir / "checkpoints") as checkpoints:
            if resume:
                start, state = _resume(run_dir, checkpoints, state, cfg, log_path)
            else:
                start = 0
                row = _log(log_path, state, task, evaluate_fn, elapsed=0.0)
                checkpoints.save(state)
                checkpoints.last_finite = 0 if _finite(row) else None
            _write_files(run_dir, files)
            checkpoints.flush()
            run_lock.finish_start(run_dir)
            state, step = _chunks(state, start, task, train_chunk, evaluate_fn, cfg, log_path, checkpoints,
                                  run_dir, progress, on_nonfinite, stop)
        if stop.signal is not None and step < cfg.steps:
            name = signal.Signals(stop.signal).name
            raise TrainingInterrupted(f"stopped by {name} at step {step}; the last checkpoint is step "
                                      f"{checkpoints.latest()} in {run_dir}", stop.signal)
    return state


def _prepare(run_dir: Path, *, unfinished: bool, fresh: bool) -> None:
    """Make the run directory ready to write. Process 0 alone changes it (it holds the lock); the others wait at a
    barrier until it is done, so none of them writes into a directory that is not there yet or is being cleared."""
    if jax.process_index() == 0:
        if unfinished:
            run_lock.clear_unfinished(run_dir)
        if fresh:
            run_lock.begin(run_dir)
        (run_dir / "figures").mkdir(exist_ok=True)
    barrier("toymi: run directory prepared")


def _chunks(state, start, task, train_chunk, evaluate_fn, cfg, log_path, checkpoints, run_dir, progress,
            on_nonfinite, stop):
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, unit="step", dynamic_ncols=True)
    began = time.perf_counter()
    step = start
    try:
        while step < cfg.steps and stop.signal is None:
            new_state, losses = train_chunk(state, task)
            losses = to_host(losses)
            if not np.isfinite(losses).all():
                on_nonfinite(losses, step, run_dir, checkpoints)
            state, step = new_state, step + cfg.eval_every
            row = _log(log_path, state, task, evaluate_fn, elapsed=time.perf_counter() - began)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                checkpoints.save(state)
                if _finite(row):
                    checkpoints.last_finite = step
            bar.update(cfg.eval_every)
            bar.set_postfix({k: _short(v) for k, v in row.items() if k.endswith("_loss")})
    finally:
        bar.close()
    return state, step


def _resume(run_dir: Path, checkpoints: Checkpoints, state, cfg: TrainConfig, log_path: Path):
    start = checkpoints.newest_intact(report=lambda line: print(f"toymi: {line}", file=sys.stderr))
    if start is None:
        raise RunDirectoryError(f"{run_dir} has no intact checkpoint to resume from")
    if start > cfg.steps:
        raise RunDirectoryError(f"{run_dir} is already at step {start}, past train.steps={cfg.steps}; a run cannot "
                                "be shortened (load an earlier checkpoint with load_run instead)")
    state = checkpoints.restore(start, like=state)
    if jax.process_index() != 0:  # multi-process: process 0 alone owns metrics.jsonl
        checkpoints.last_finite = start
        return start, state
    rows = metrics_log.truncate_after(log_path, start)
    checkpoints.last_finite = start if rows and rows[-1]["step"] == start and _finite(rows[-1]) else None
    return start, state


def _write_files(run_dir: Path, files: dict[str, str]) -> None:
    """Write the run's spec files, atomically and only where they changed (a resume that extends `train.steps`)."""
    if jax.process_index() == 0:  # multi-host: one writer (orbax coordinates checkpoints itself)
        for name, text in files.items():
            path = run_dir / name
            if not path.exists() or path.read_text() != text:
                write_atomically(path, text)


def _finite(row: dict) -> bool:
    return all(np.isfinite(np.asarray(v, dtype=float)).all() for k, v in row.items() if k.endswith("_loss"))


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run never writes into a directory that holds something (checked before any expensive work); a
    directory left by an interrupted start (`run_lock.UNFINISHED`) holds nothing and is reused."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is a file, not a run directory; pass --out a directory")
    if not resume and run_lock.holds_work(run_dir):
        raise RunDirectoryError(f"{run_dir} already holds a run; pass --resume to continue it or --out elsewhere")


def _stop(losses: np.ndarray, step: int, run_dir: Path, checkpoints: Checkpoints) -> None:
    bad = int(np.argmin(np.isfinite(losses)))
    good = checkpoints.last_finite
    where = (f"the last good checkpoint is step {good} in {run_dir} (its metrics are finite)" if good is not None else
             f"no checkpoint in {run_dir} has finite metrics (the initialisation is already non-finite)")
    raise TrainingDiverged(f"loss became {losses[bad]} at step {step + bad} (the update from step {step + bad} to "
                           f"{step + bad + 1}); {where}")


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
    """Refuse a run directory whose spec differs from `spec` in anything but `train.steps` (resume or reuse it),
    naming every differing key with both values."""
    if not spec_path.exists():
        raise RunDirectoryError(f"{spec_path} does not exist")
    saved = load_saved(spec_path)
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
