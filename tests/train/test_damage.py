"""Damaged and interrupted run directories: every fault is detected and named, resume falls back safely."""

import os
import shutil
import signal

import pytest

import toymi
from toymi.errors import CheckpointDamaged, RunDirectoryError, TrainingInterrupted
from toymi.run import StaleModel
from toymi.experiment import train
from toymi.train import metrics_log, run_lock
from toymi.train.metrics_log import TornMetricsLine

from .test_training import leaves_equal, tiny_spec


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    state = train(tiny_spec(), run_dir, progress=False)
    return run_dir, state


@pytest.fixture
def copy(finished, tmp_path):
    shutil.copytree(finished[0], tmp_path / "run")
    return tmp_path / "run"


def data_files(step_dir):
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and "/d/" in str(p))


@pytest.mark.slow
def test_clean_run_leaves_no_marker_or_lock_and_seals_every_checkpoint(finished):
    run_dir, _ = finished
    assert not (run_dir / run_lock.LOCK).exists() and not (run_dir / run_lock.UNFINISHED).exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.sha256.json")) == [
        "0.sha256.json", "20.sha256.json", "40.sha256.json"]


@pytest.mark.slow
def test_a_bit_flip_is_named_and_resume_falls_back(copy, finished, capsys):
    target = data_files(copy / "checkpoints" / "40")[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    run = toymi.load_run(copy)
    with pytest.raises(CheckpointDamaged, match=f"checkpoint 40 is damaged: {target}.*does not match"):
        run.checkpoint(40)
    run.close()
    state = train(tiny_spec(), copy, resume=True, progress=False)
    assert "checkpoint 40 is damaged" in capsys.readouterr().err
    assert leaves_equal(state, finished[1])  # replayed from step 20: bit-exact
    assert (copy / "damaged_checkpoints" / "40").is_dir()  # kept for inspection, not deleted


@pytest.mark.slow
def test_a_missing_data_file_falls_back(copy, finished):
    data_files(copy / "checkpoints" / "40")[-1].unlink()
    state = train(tiny_spec(), copy, resume=True, progress=False)
    assert leaves_equal(state, finished[1])


@pytest.mark.slow
def test_deleted_last_checkpoint_load_run_names_the_step_and_warns(copy):
    shutil.rmtree(copy / "checkpoints" / "40")
    run = toymi.load_run(copy)
    assert run.model_step == 20
    with pytest.warns(StaleModel, match="run.model is step 20, but metrics.jsonl ends at step 40"):
        run.model
    run.close()


@pytest.mark.slow
def test_missing_metrics_and_checkpoints_are_errors_and_nothing_is_created(copy):
    (copy / "metrics.jsonl").unlink()
    run = toymi.load_run(copy)
    with pytest.raises(RunDirectoryError, match="metrics.jsonl does not exist"):
        run.metrics
    run.close()
    shutil.rmtree(copy / "checkpoints")
    with pytest.raises(RunDirectoryError, match="checkpoints does not exist"):
        toymi.load_run(copy)
    assert not (copy / "checkpoints").exists()


@pytest.mark.slow
def test_torn_metrics_line_is_reported_and_cut_back_on_resume(copy, finished):
    path = copy / "metrics.jsonl"
    path.write_text(path.read_text() + '{"step": 50, "train_lo')
    with pytest.warns(TornMetricsLine, match="metrics.jsonl: ignoring a torn last line 6"):
        assert len(metrics_log.read(path)) == 5
    bad = copy / "bad.jsonl"
    bad.write_text('{"step": 0}\n{oops\n{"step": 1}\n')
    with pytest.raises(RunDirectoryError, match="bad.jsonl line 2 is not valid JSON"):
        metrics_log.read(bad)
    train(tiny_spec(steps=60), copy, resume=True, progress=False)
    assert [r["step"] for r in metrics_log.read(path)] == [0, 10, 20, 30, 40, 50, 60]


def test_resume_names_differing_keys_and_never_shortens(copy):
    before = (copy / "spec.toml").read_text()
    with pytest.raises(RunDirectoryError, match=r"train.lr: the run has 0.003, this spec has 0.01"):
        train(tiny_spec(lr=1e-2), copy, resume=True, progress=False)
    with pytest.raises(RunDirectoryError, match="already at step 40, past train.steps=20"):
        train(tiny_spec(steps=20), copy, resume=True, progress=False)
    assert (copy / "spec.toml").read_text() == before


@pytest.mark.slow
def test_a_second_writer_is_refused_with_the_pid(copy):
    with run_lock.locked(copy):
        with pytest.raises(RunDirectoryError, match=f"another process \\(pid {os.getpid()}\\)"):
            train(tiny_spec(steps=60), copy, resume=True, progress=False)
    # a lock file left by a dead process (no flock held) does not block
    (copy / run_lock.LOCK).write_text("999999")
    train(tiny_spec(steps=60), copy, resume=True, progress=False)


@pytest.mark.parametrize("leftover", [[run_lock.LOCK], [run_lock.UNFINISHED, "metrics.jsonl", "checkpoints"]])
@pytest.mark.slow
def test_an_interrupted_start_never_blocks(tmp_path, finished, leftover):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in leftover:
        (run_dir / name).mkdir() if name == "checkpoints" else (run_dir / name).write_text("")
    state = train(tiny_spec(), run_dir, resume=True, progress=False)  # --resume on it starts again
    assert leaves_equal(state, finished[1])


def test_an_unfinished_directory_with_foreign_files_is_not_cleared(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / run_lock.UNFINISHED).write_text("")
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        train(tiny_spec(), run_dir, progress=False)
    assert (run_dir / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_sigterm_stops_at_a_safe_point_and_resumes_bit_exactly(tmp_path, finished):
    spec = tiny_spec()  # the fixture's spec: its compiled chunk is reused
    import toymi.train.loop as loop
    real = loop._log

    def log_then_signal(path, state, *args, **kwargs):
        row = real(path, state, *args, **kwargs)
        if row["step"] == 30:  # logged, past the checkpoint at 20, before the one at 40
            os.kill(os.getpid(), signal.SIGTERM)
        return row

    loop._log = log_then_signal
    try:
        with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 30; the last checkpoint is step 20"):
            train(spec, tmp_path / "run", progress=False)
    finally:
        loop._log = real
    state = train(spec, tmp_path / "run", resume=True, progress=False)
    assert leaves_equal(state, finished[1])
    # step 30 was logged before the stop, then replaced: no row lost or duplicated
    assert [r["step"] for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl")] == [0, 10, 20, 30, 40]


@pytest.mark.slow
def test_divergence_after_several_checkpoints_names_a_finite_one(tmp_path, monkeypatch):
    import toymi.experiment.training as loop

    real = loop.train_chunk_for

    def nan_from_step_30(cfg):
        chunk = real(cfg)

        def wrapped(state, task):
            new_state, losses = chunk(state, task)
            return new_state, losses * (float("nan") if int(state.step) >= 30 else 1.0)

        return wrapped

    monkeypatch.setattr(loop, "train_chunk_for", nan_from_step_30)
    with pytest.raises(toymi.train.TrainingDiverged, match="at step 30 .*last good checkpoint is step 20 in"):
        train(tiny_spec(), tmp_path / "run", progress=False)
    assert toymi.load_run(tmp_path / "run").steps == [0, 20]
