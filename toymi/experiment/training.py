"""`train(spec, run_dir)`: a `Spec` trained into a run directory by the engine's host loop.

Everything that reads the spec lives here (the optimiser from `[train]`, the model and task it names, the compiled
chunk shared by specs that compile alike, refusing a run directory of another spec); the loop itself
(`toymi.train.loop.host_loop`) takes plain values.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
from jax.sharding import Mesh

from toymi.errors import RunDirectoryError
from toymi.experiment.optimizer import make_optimizer, program_config
from toymi.experiment.spec import Spec, TrainConfig, load_saved, spec_differences
from toymi.train import run_lock
from toymi.train.loop import Cadence, check_run_dir, host_loop, stop_on_nonfinite
from toymi.train.sharding import batch_placement, replicate
from toymi.train.state import TrainState, init_state
from toymi.train.step import evaluate, make_train_chunk


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
    return host_loop(run_dir, {"spec.toml": spec.to_toml()}, state, task, chunk, evaluate, cadence(spec.train),
                     resume=resume, progress=progress, on_nonfinite=stop_on_nonfinite)


def cadence(cfg: TrainConfig) -> Cadence:
    """The host loop's pacing, read off a `[train]` section."""
    return Cadence(cfg.steps, cfg.eval_every, cfg.checkpoint_every)


def train_chunk_for(cfg: TrainConfig) -> Callable:
    """The compiled chunk of `cfg.eval_every` steps that `train` runs, shared by every config with the same
    `program_config`: a second run that differs in seed or AdamW's numbers (which live in the state it is given)
    reuses the first one's compiled program instead of compiling it again."""
    return _train_chunk(program_config(cfg))


@functools.lru_cache(maxsize=16)
def _train_chunk(program: TrainConfig) -> Callable:
    return make_train_chunk(make_optimizer(program), program.eval_every)


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
