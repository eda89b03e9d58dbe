import json
from pathlib import Path

import pytest

from toymi.cli import main

ROOT = Path(__file__).parents[1]
SMALL = ["--set", "task.p=7", "--set", "model.d_model=16", "--set", "model.d_mlp=32", "--set", "model.n_heads=2",
         "--set", "model.d_head=8", "--set", "train.steps=20", "--set", "train.eval_every=10",
         "--set", "train.checkpoint_every=10", "--no-progress"]


@pytest.mark.slow
def test_train_then_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(ROOT / "tasks" / "grokking_quick.toml"), "--out", str(out), *SMALL]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20]
    figure = out / "figures" / "training_curves.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure.unlink()
    assert main(["plot", str(out)]) == 0
    assert figure.exists()
    # resume of a finished run does nothing and loses nothing
    assert main(["train", str(ROOT / "tasks" / "grokking_quick.toml"), "--out", str(out), "--resume", *SMALL]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["train", str(ROOT / "tasks" / "grokking_quick.toml"), "--set", "model.act_fn=swish",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toymi: error: invalid ModelConfig") and "act_fn must be one of" in err
    assert not (tmp_path / "r").exists()  # rejected before anything was written
    assert main(["plot", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_sweep_then_phase(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", str(ROOT / "tasks" / "grokking_quick.toml"), "--grid", "task.frac_train=0.3,0.6",
                 "--grid", "train.weight_decay=0,1", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "trained 4 members to step 20" in printed
    assert json.loads((out / "members.json").read_text())[3] == {"task.frac_train": 0.6, "train.weight_decay": 1,
                                                                  "train.seed": 0}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows[-1]["test_loss"]) == 4
    assert (out / "figures" / "phase_test_loss_below_0.1.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["phase", str(out), "--metric", "train_loss", "--below", "100"]) == 0  # every member at step 0
    assert "train.weight_decay=0: task.frac_train=0.3 → 0.0" in capsys.readouterr().out
    assert main(["sweep", str(ROOT / "tasks" / "grokking_quick.toml"), "--grid", "model.d_model=8,16",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "model.d_model cannot vary" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_summaries_follow_the_task(tmp_path, capsys):
    out = tmp_path / "tms"
    assert main(["sweep", str(ROOT / "tasks" / "tms_quick.toml"), "--grid", "task.feature_probability=0.05,0.5",
                 "--set", "train.steps=20", "--set", "train.eval_every=10", "--set", "train.checkpoint_every=10",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "None=" not in printed and "no steps-until-threshold diagram" in printed
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["test_loss_fraction"]
    assert f"task.feature_probability=0.05 → {final[0]:.4g}, task.feature_probability=0.5 → {final[1]:.4g}" in printed
    assert (out / "figures" / "phase_final_test_loss_fraction.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["phase", str(out), "--below", "100"]) == 0  # a threshold on request: every member at step 0
    assert "task.feature_probability=0.05 → 0.0, task.feature_probability=0.5 → 0.0" in capsys.readouterr().out
