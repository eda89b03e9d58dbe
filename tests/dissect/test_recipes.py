"""`toymi dissect RUN` on tiny runs of every task with a recipe: the report, its figures and numbers are written.
Grokking and induction dissect the views' tiny runs (tests/tiny_runs.py: trained once per process), the other
tasks a run trained here at the sizes below."""

import json
from pathlib import Path

import pytest

import tiny_runs
from toymi.cli import main

ROOT = Path(__file__).parents[2]
FEW = ["--set", "train.steps=20", "--set", "train.eval_every=10", "--set", "train.checkpoint_every=20",
       "--no-progress", "--no-plot"]
TINY = {
    "induction_quick": "shared",  # tiny_runs.TINY's
    "addition_quick": ["--set", "task.n_digits=2", "--set", "task.eval_size=32", "--set", "task.batch_size=8",
                       "--set", "model.d_model=16", "--set", "model.d_mlp=32", "--set", "model.d_head=4",
                       "--set", "train.warmup_steps=0"],
    "grokking_quick": "shared",
    "chess_quick": ["--set", "task.n_games=40", "--set", "task.n_test_games=10", "--set", "task.max_plies=8",
                    "--set", "task.batch_size=8", "--set", "model.d_model=16", "--set", "model.d_mlp=32",
                    "--set", "model.d_head=4"],
    "tms_quick": ["--set", "task.eval_size=64", "--set", "task.batch_size=32"],
    "and_gates_quick": ["--set", "task.n_features=4", "--set", "task.n_eval=64", "--set", "task.batch_size=32",
                        "--set", "model.d_model=8", "--set", "model.d_mlp=8"],
    "compressed_computation_quick": ["--set", "task.n_features=8", "--set", "task.n_eval=64",
                                     "--set", "task.batch_size=32", "--set", "model.d_model=16",
                                     "--set", "model.d_mlp=4", "--set", "task.feature_probability=0.2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("spec", sorted(TINY))
def test_dissect_writes_a_report(spec, tmp_path, capsys):
    if TINY[spec] == "shared":  # the report goes next to, not inside, a run other tests read
        run, out = tiny_runs.tiny_run(spec), tmp_path / "dissect"
        assert main(["dissect", str(run), "--out", str(out), "--smoke"]) == 0
    else:  # the report goes where it goes by default, into the run
        run = tmp_path / "run"
        cache = ["--set", f"task.cache_dir={tmp_path / 'games'}"] if spec.startswith("chess") else []
        assert main(["train", str(ROOT / "tasks" / f"{spec}.toml"), "--out", str(run), *FEW, *TINY[spec],
                     *cache]) == 0
        assert main(["dissect", str(run), "--smoke"]) == 0
        out = run / "dissect"
    text = (out / "report.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    assert figures and all(f.read_bytes()[:4] == b"\x89PNG" for f in figures)
    for figure in figures:
        assert f"figures/{figure.name}" in text  # every figure is shown in the report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics, "the report records its numbers"


def test_dissect_refuses_what_it_cannot_read(tmp_path, capsys):
    assert main(["dissect", str(tmp_path / "nothing")]) == 2
    assert "not a toymi run directory" in capsys.readouterr().err


def test_dissect_refuses_a_sweep_or_a_task_without_recipe_as_user_errors(monkeypatch, capsys, tmp_path):
    # once plain ValueError / KeyError, which the CLI now treats as bugs (traceback, exit 1); `toymi circuits` on a
    # sweep failed deep inside (an AttributeError or a shape error, depending on the task) until it said so too
    from types import SimpleNamespace

    import toymi.reports.dissect
    import toymi.run
    from toymi.run import SweepRun

    monkeypatch.setattr(toymi.run, "load_run", lambda path: SweepRun.__new__(SweepRun))
    assert main(["dissect", "a_sweep"]) == 2
    assert "a_sweep is a sweep; dissect one member's model" in capsys.readouterr().err
    assert main(["circuits", str(tmp_path)]) == 2
    assert f"{tmp_path} is a sweep; find the circuits of one member's model" in capsys.readouterr().err
    run = SimpleNamespace(spec=SimpleNamespace(task={"name": "no_such_task"}), steps=[10])
    monkeypatch.setattr(toymi.reports.dissect, "load_single_run", lambda path, command: run)
    assert main(["dissect", "a_run"]) == 2
    assert "no dissection recipe for task 'no_such_task'" in capsys.readouterr().err
