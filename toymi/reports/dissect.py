"""`toymi dissect RUN`: load a run, run its task's default recipe into a `Report`, write the report directory."""

from __future__ import annotations

from pathlib import Path

from toymi.errors import NoCheckpoints, UnknownName
from toymi.reports.recipes import RECIPES
from toymi.reports.report import Report
from toymi.run import load_single_run


def dissect_run(run_dir: str | Path, out: str | Path | None = None, smoke: bool = False) -> Path:
    """Run the default recipe of `run_dir`'s task; returns the path of the written `report.md`.

    **Arguments:**

    - `run_dir`: a run directory from `toymi train`.
    - `out`: the report directory (default `RUN/dissect`).
    - `smoke`: smallest settings (seconds), for tests.
    """
    run = load_single_run(run_dir, "dissect")
    name = run.spec.task["name"]
    if name not in RECIPES:
        raise UnknownName(f"no dissection recipe for task {name!r}; recipes exist for {sorted(RECIPES)}")
    if not run.steps:
        raise NoCheckpoints(f"{run_dir} has no checkpoints to dissect")
    report = Report(Path(out) if out else Path(run_dir) / "dissect",
                    f"Dissection of {Path(run_dir).name} ({name}, step {run.steps[-1]})")
    RECIPES[name](run, report, smoke)
    return report.write()
