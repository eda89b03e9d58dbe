"""`train_sweep`: a whole sweep trained as one vmapped program, optionally spread over a device mesh.

The sweep directory holds `sweep.toml` (base spec, grid, seeds), `members.json` (each member's differing settings),
`metrics.jsonl` (each metric a list, one value per member), one checkpoint series of the stacked state, and
`figures/`. A member whose loss becomes NaN or inf does not stop the others: it is reported, and its metrics read NaN.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from jax.sharding import Mesh

from toymi.errors import RunDirectoryError
from toymi.experiment.ensemble import abstract_ensemble, init_ensemble
from toymi.experiment.spec import spec_differences
from toymi.experiment.sweep import Sweep
from toymi.experiment.training import cadence
from toymi.train import run_lock
from toymi.train.ensemble import evaluate_ensemble, make_ensemble_chunk
from toymi.train.loop import check_run_dir, host_loop
from toymi.train.sharding import MEMBERS, batch_placement, shard_members
from toymi.train.state import TrainState


def train_sweep(sweep: Sweep, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                mesh: Mesh | None = None) -> TrainState:
    """Train every member of `sweep` into `run_dir`; returns the stacked final state (leading axis: member).

    **Arguments:**

    - `sweep`: base spec, grid and seeds (`toymi.experiment.Sweep`).
    - `run_dir`: where the sweep lives. Must be new or empty unless `resume`.
    - `resume`: continue from the latest checkpoint (the sweep must match, except the base `train.steps`).
    - `progress`: draw a progress bar.
    - `mesh`: a `(members, batch)` device mesh (`toymi.train.sharding.ensemble_mesh`) to spread the work over.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    if resume and not run_lock.is_unfinished(run_dir):
        check_same_sweep(sweep, run_dir / "sweep.toml")
    specs = sweep.member_specs()
    state, task, optimizer = init_ensemble(specs)
    place, axis = None, None
    if mesh is not None:
        state, task = shard_members((state, task), mesh)
        place, axis = batch_placement(mesh), MEMBERS
    chunk = make_ensemble_chunk(optimizer, specs[0].train.eval_every, place_batch=place, spmd_axis_name=axis)
    files = {"sweep.toml": sweep.to_toml(), "spec.toml": sweep.base_spec().to_toml(),
             "members.json": json.dumps(sweep.members, indent=1)}
    reported: set[int] = set()

    def note_diverged(losses: np.ndarray, step: int, run_dir: Path, checkpoints) -> None:
        for member in np.flatnonzero(~np.isfinite(losses).all(axis=1)):
            if int(member) not in reported:
                reported.add(int(member))
                first = int(np.argmin(np.isfinite(losses[member])))
                warnings.warn(f"member {member} ({sweep.members[member]}) diverged at step {step + first}; the "
                              "others go on", stacklevel=2)

    return host_loop(run_dir, files, state, task, chunk, evaluate_ensemble, cadence(specs[0].train), resume=resume,
                     progress=progress, on_nonfinite=note_diverged)


def check_same_sweep(sweep: Sweep, path: Path) -> None:
    """Refuse a sweep directory whose sweep differs from `sweep` in anything but `train.steps`."""
    if not path.exists():
        raise RunDirectoryError(f"{path} does not exist")
    saved = Sweep.load(path)
    steps = sweep.base.get("train", {}).get("steps")
    saved_base = {**saved.base, "train": {**saved.base.get("train", {}), "steps": steps}}
    if (saved_base, saved.grid, saved.seeds) != (sweep.base, sweep.grid, sweep.seeds):
        differences = spec_differences({"base": saved_base, "grid": saved.grid, "seeds": saved.seeds},
                                       {"base": sweep.base, "grid": sweep.grid, "seeds": sweep.seeds}, frozenset())
        raise RunDirectoryError(f"the sweep differs from the one in {path} (only train.steps may differ, to resume "
                                "or extend it): " + "; ".join(differences))


def abstract_ensemble_state(sweep: Sweep) -> TrainState:
    """The shapes and dtypes of `sweep`'s stacked state, without computing it (a restore target)."""
    return abstract_ensemble(sweep.member_specs())
