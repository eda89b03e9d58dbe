"""The host loop: compiled chunks of steps, then log, check for divergence and checkpoint between them.

A run directory holds the caller's files (e.g. `spec.toml`), `metrics.jsonl`, `checkpoints/` and `figures/`.
Resuming restores the latest checkpoint and replays the same compiled chunks, so the final weights equal an
uninterrupted run's bit for bit on the same backend.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from toymi.errors import RunDirectoryError, TrainingDiverged, TrainingInterrupted
from toymi.train import metrics_log, run_lock
from toymi.train.checkpoints import Checkpoints
from toymi.train.integrity import write_atomically
from toymi.train.sharding import barrier, to_host
from toymi.train.state import TrainState, step_of
from toymi.train.stop_signals import StopOnSignal


class Cadence(NamedTuple):
    """How the host loop paces a run: `steps` in all, metrics every `eval_every` (one compiled chunk), a checkpoint
    every `checkpoint_every` (a multiple of `eval_every`; the first and last are always saved)."""

    steps: int
    eval_every: int
    checkpoint_every: int


def host_loop(run_dir: Path, files: dict[str, str], state, task, train_chunk: Callable, evaluate_fn: Callable,
              cfg: Cadence, *, resume: bool, progress: bool, on_nonfinite: Callable) -> TrainState:
    """Chunks of compiled steps; between them, log metrics, check the losses, checkpoint, draw progress.

    `train_chunk(state, task) -> (state, losses)` runs `cfg.eval_every` steps; `evaluate_fn(model, task)` gives the
    metrics logged after each chunk.

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


def _resume(run_dir: Path, checkpoints: Checkpoints, state, cfg: Cadence, log_path: Path):
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


def stop_on_nonfinite(losses: np.ndarray, step: int, run_dir: Path, checkpoints: Checkpoints) -> None:
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
