import json
import os
import signal
import subprocess
import sys
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


def _raise(error):
    def run(args):
        raise error
    return run


def test_an_internal_bug_is_not_a_user_error(monkeypatch, capsys):
    import toymi.cli.dissect

    monkeypatch.setattr(toymi.cli.dissect, "run", _raise(KeyError("bug")))
    with pytest.raises(KeyError):  # propagates: Python shows its traceback and exits with 1
        main(["dissect", "anywhere"])
    err = capsys.readouterr().err
    assert "internal error, a bug in toymi" in err and "toymi: error:" not in err


@pytest.mark.slow  # a fresh interpreter importing jax: ~5 s
def test_an_internal_bug_exits_1_with_its_traceback(tmp_path):
    # `python -m toymi.cli`, as a user runs it, with one subcommand broken by a plain KeyError
    script = ("import runpy, sys\nimport toymi.cli.dissect\n\ndef bug(args):\n    raise KeyError('bug in toymi')\n\n"
              "toymi.cli.dissect.run = bug\nsys.argv = ['toymi', 'dissect', 'anywhere']\n"
              "runpy.run_module('toymi.cli', run_name='__main__', alter_sys=True)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr and "KeyError: 'bug in toymi'" in done.stderr
    assert "toymi: error:" not in done.stderr


def test_debug_shows_a_user_errors_traceback(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toymi: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["--debug", "plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "RunDirectoryError" in err
    assert err.strip().splitlines()[-1].startswith("toymi: error:")


def test_a_signal_outside_training_is_one_line_and_130(monkeypatch, capsys):
    import toymi.cli.dissect

    monkeypatch.setattr(toymi.cli.dissect, "run", lambda args: os.kill(os.getpid(), signal.SIGTERM))
    assert main(["dissect", "anywhere"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("toymi: stopped by a signal outside the training loop") and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is not toymi.cli._interrupt  # the previous handler is back
    monkeypatch.setattr(toymi.cli.dissect, "run", _raise(KeyboardInterrupt()))  # SIGINT (Ctrl-C)
    assert main(["dissect", "anywhere"]) == 130
