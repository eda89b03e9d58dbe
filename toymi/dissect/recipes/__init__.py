"""`toymi dissect RUN`: each task's default dissection, written as a report directory.

A recipe is `recipe(run, report, smoke)`: it reads the run (`toymi.load_run`), computes with `toymi.dissect`'s pure
functions, and adds sections, figures and numbers to the `Report`. `smoke=True` asks for the smallest settings
that still exercise every step (tests and CI).
"""

from __future__ import annotations

from pathlib import Path

from toymi.dissect.report import Report
from toymi.dissect.recipes.addition import addition_recipe
from toymi.dissect.recipes.and_gates import and_gates_recipe
from toymi.dissect.recipes.chess import chess_recipe
from toymi.dissect.recipes.compressed_computation import compressed_computation_recipe
from toymi.dissect.recipes.induction import induction_recipe
from toymi.dissect.recipes.modular import modular_recipe
from toymi.dissect.recipes.tms import tms_recipe

RECIPES = {
    "modular_arithmetic": modular_recipe,
    "chess": chess_recipe,
    "induction": induction_recipe,
    "addition": addition_recipe,
    "tms": tms_recipe,
    "and_gates": and_gates_recipe,
    "compressed_computation": compressed_computation_recipe,
}


def dissect_run(run_dir: str | Path, out: str | Path | None = None, smoke: bool = False) -> Path:
    """Run the default recipe of `run_dir`'s task; returns the path of the written `report.md`.

    **Arguments:**

    - `run_dir`: a run directory from `toymi train`.
    - `out`: the report directory (default `RUN/dissect`).
    - `smoke`: smallest settings (seconds), for tests.
    """
    from toymi.run import SweepRun, load_run

    run = load_run(run_dir)
    if isinstance(run, SweepRun):
        raise ValueError(f"{run_dir} is a sweep; dissect one member's model in Python (run.member(i)) or use "
                         "`toymi phase` for the sweep as a whole")
    name = run.spec.task["name"]
    if name not in RECIPES:
        raise KeyError(f"no dissection recipe for task {name!r}; recipes exist for {sorted(RECIPES)}")
    if not run.steps:
        raise FileNotFoundError(f"{run_dir} has no checkpoints to dissect")
    report = Report(Path(out) if out else Path(run_dir) / "dissect",
                    f"Dissection of {Path(run_dir).name} ({name}, step {run.steps[-1]})")
    RECIPES[name](run, report, smoke)
    return report.write()
