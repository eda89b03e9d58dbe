"""Multi-process runs on one machine: JAX's distributed runtime on CPU (2 processes × 4 fake devices each, gloo
collectives, coordinator on localhost), driven through `toymi sweep/train --distributed` as on a real cluster.

What a pod slice or a multi-node GPU job relies on: the run directory is written once (metrics and spec files by
process 0, checkpoints by orbax from every process), a hard-killed process loses nothing a resume cannot recover,
and the result equals the same run in one process.
"""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from toymi.experiment.spec import Spec
from toymi.experiment.sweep import Sweep
from toymi.experiment import train
from toymi.train import metrics_log
from toymi.train.checkpoints import Checkpoints
from toymi.experiment.sweep_training import abstract_ensemble_state, train_sweep
from toymi.experiment.training import abstract_state

from fake_devices import fake_devices_environ

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tasks" / "tms_quick.toml"  # batch 1024: splits evenly over 8 devices
SETTINGS = ["task.eval_size=1000", "train.eval_every=10", "train.checkpoint_every=10"]


def _launch(args: list[str]) -> list[subprocess.Popen]:
    """The same command in 2 processes of 4 CPU devices each, joined by JAX's distributed runtime."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**fake_devices_environ(4), "PYTHONPATH": str(ROOT)}
    sets = [x for s in SETTINGS for x in ("--set", s)]
    return [subprocess.Popen([sys.executable, "-m", "toymi.cli", *args, *sets, "--distributed", "--coordinator",
                              f"localhost:{port}", "--num-processes", "2", "--process-id", str(i), "--no-progress",
                              "--no-plot"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for i in range(2)]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    return outs


def _committed_steps(checkpoints: Path) -> list[int]:
    """Checkpoints orbax has finished (it renames a step's temporary directory to the bare number when done)."""
    return sorted(int(p.name) for p in checkpoints.glob("*") if p.name.isdigit()) if checkpoints.exists() else []


def _assert_same_metrics(path_a: Path, path_b: Path, steps: list[int]) -> None:
    a, b = metrics_log.read(path_a), metrics_log.read(path_b)
    assert [r["step"] for r in a] == [r["step"] for r in b] == steps  # one writer: no row twice
    for ra, rb in zip(a, b):
        for k in ra.keys() - {"elapsed_s"}:
            np.testing.assert_allclose(ra[k], rb[k], rtol=1e-5, atol=1e-7, err_msg=f"{k} at step {ra['step']}")


def _assert_same_weights(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.long(22)
def test_sweep_over_two_processes_killed_and_resumed_equals_one_process(tmp_path):
    out = tmp_path / "sweep"
    sweep_cmd = ["sweep", str(SPEC), "--seeds", "8", "--out", str(out)]
    # Far more steps than it will live for: process 1 is killed once the first checkpoints are on disk.
    procs = _launch(sweep_cmd + ["--set", "train.steps=100000"])
    try:
        while max(_committed_steps(out / "checkpoints"), default=0) < 10:
            if any(p.poll() is not None for p in procs):  # one ended before the kill: show why
                for q in procs:
                    q.kill()
                pytest.fail("a process ended early:\n" + "\n".join(q.communicate()[0][-3000:] for q in procs))
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)
        assert procs[1].wait(timeout=60) == -signal.SIGKILL
    finally:
        for p in procs:  # process 0 cannot go on without its peer: end it too, as a cluster scheduler would
            p.kill()
            p.communicate()
    killed_at = max(_committed_steps(out / "checkpoints"))
    assert 10 <= killed_at < 60, killed_at

    outs = _finish(_launch(sweep_cmd + ["--set", "train.steps=60", "--resume"]))
    assert "8 members over a {'members': 8, 'batch': 1} mesh of 8 cpu devices" in outs[0]
    assert _committed_steps(out / "checkpoints")[-1] == 60

    sweep = Sweep.from_args(SPEC, [], seeds=8, overrides=SETTINGS + ["train.steps=60"])
    alone = train_sweep(sweep, tmp_path / "one_process", progress=False)
    _assert_same_metrics(out / "metrics.jsonl", tmp_path / "one_process" / "metrics.jsonl", list(range(0, 61, 10)))
    with Checkpoints(out / "checkpoints") as checkpoints:
        _assert_same_weights(checkpoints.restore(60, like=abstract_ensemble_state(sweep)), alone)


@pytest.mark.slow
def test_train_one_member_data_parallel_over_two_processes_equals_one_process(tmp_path):
    out = tmp_path / "run"
    outs = _finish(_launch(["train", str(SPEC), "--out", str(out), "--set", "train.steps=30"]))
    assert "data-parallel over 8 cpu devices in 2 processes" in outs[0]
    spec = Spec.load(SPEC, SETTINGS + ["train.steps=30"])
    alone = train(spec, tmp_path / "one_process", progress=False)
    _assert_same_metrics(out / "metrics.jsonl", tmp_path / "one_process" / "metrics.jsonl", [0, 10, 20, 30])
    with Checkpoints(out / "checkpoints") as checkpoints:
        _assert_same_weights(checkpoints.restore(30, like=abstract_state(spec)), alone)


def test_process_flags_without_distributed_are_refused(tmp_path, capsys):
    from toymi.cli import main

    assert main(["train", str(SPEC), "--out", str(tmp_path / "r"), "--coordinator", "localhost:1234",
                 "--process-id", "1"]) == 2
    assert "--coordinator, --process-id only apply with --distributed" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_process_other_than_0_writes_nothing_before_process_0_has_prepared_the_run_directory(tmp_path,
                                                                                                monkeypatch):
    """The cause of an intermittent deadlock: process 1 made `figures/` in a run directory that process 0 had not
    created yet (FileNotFoundError, then both processes waited forever on each other). Every process but 0 must
    wait at the barrier before it touches the directory: simulated here as process 1, stopped at that barrier."""
    import toymi.train.loop as loop

    class AtBarrier(Exception):
        pass

    def barrier(name):
        if name == "toymi: run directory prepared":
            raise AtBarrier(name)

    monkeypatch.setattr(loop, "barrier", barrier)
    spec = Spec.load(SPEC, SETTINGS + ["train.steps=10"])
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    with pytest.raises(AtBarrier):
        train(spec, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
