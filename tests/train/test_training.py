import re

import jax
import numpy as np
import pytest

import toymi
from toymi.errors import RunDirectoryError, TrainingDiverged
from toymi.experiment.spec import Spec
from toymi.experiment import train
from toymi.train import Checkpoints, metrics_log
from toymi.experiment.training import abstract_state

TINY = {
    "task": {"name": "modular_arithmetic", "p": 11, "frac_train": 0.6, "data_seed": 0},
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_mlp": 64},
    "train": {"steps": 40, "lr": 3e-3, "weight_decay": 0.1, "eval_every": 10, "checkpoint_every": 20,
              "warmup_steps": 5},
}


def tiny_spec(**train_overrides) -> Spec:
    return Spec.from_dict({**TINY, "train": {**TINY["train"], **train_overrides}})


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.slow
def test_a_tiny_model_learns(tmp_path):
    # eval_every 10, as tiny_spec(): the same compiled chunk as the other tests here (one compile per process)
    state = train(tiny_spec(steps=300, checkpoint_every=300), tmp_path / "run", progress=False)
    metrics = metrics_log.as_arrays(metrics_log.read(tmp_path / "run" / "metrics.jsonl"))
    assert int(state.step) == 300
    assert metrics["train_accuracy"][-1] == 1.0  # memorises the 72 training pairs (chance: 1/11)
    assert metrics["train_loss"][-1] < 0.1 * metrics["train_loss"][0]


@pytest.mark.slow
def test_run_directory_layout_and_load_run(tmp_path):
    run_dir = tmp_path / "run"
    state = train(tiny_spec(), run_dir, progress=False)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "figures", "metrics.jsonl", "spec.toml"]
    run = toymi.load_run(run_dir)
    assert run.spec == tiny_spec()
    assert run.steps == [0, 20, 40]
    assert list(run.metrics["step"]) == [0, 10, 20, 30, 40]
    assert leaves_equal(run.model, state.model)
    series = run.checkpoint_series()
    assert series.W_E.shape == (3, 12, 32)
    assert leaves_equal(jax.tree.map(lambda x: x[1], series), run.checkpoint(20))
    # a checkpoint series maps over training with one vmap
    norms = jax.vmap(lambda m: (m.W_E ** 2).sum())(series)
    assert norms.shape == (3,)
    with pytest.raises(FileNotFoundError, match="no checkpoint for step 30"):
        run.checkpoint(30)
    run.close()


@pytest.mark.slow
def test_same_spec_same_numbers(tmp_path):
    a = train(tiny_spec(), tmp_path / "a", progress=False)
    b = train(tiny_spec(), tmp_path / "b", progress=False)
    assert leaves_equal(a, b)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
    assert strip(metrics_log.read(tmp_path / "a" / "metrics.jsonl")) == strip(
        metrics_log.read(tmp_path / "b" / "metrics.jsonl"))
    c = train(tiny_spec(seed=1), tmp_path / "c", progress=False)
    assert not leaves_equal(a.model, c.model)


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted_bit_for_bit(tmp_path, monkeypatch):
    uninterrupted = train(tiny_spec(), tmp_path / "a", progress=False)

    import toymi.experiment.training as loop

    real = loop.train_chunk_for

    def interrupted_after_three_chunks(cfg):
        chunk, calls = real(cfg), []

        def wrapped(state, task):
            calls.append(1)
            if len(calls) == 4:  # steps 30..40: the checkpoint at 20 exists, the logged step 30 has none
                raise KeyboardInterrupt
            return chunk(state, task)

        return wrapped

    monkeypatch.setattr(loop, "train_chunk_for", interrupted_after_three_chunks)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_spec(), tmp_path / "b", progress=False)
    monkeypatch.setattr(loop, "train_chunk_for", real)
    assert Checkpoints(tmp_path / "b" / "checkpoints").steps() == [0, 20]
    resumed = train(tiny_spec(), tmp_path / "b", resume=True, progress=False)
    assert leaves_equal(resumed, uninterrupted)
    steps = [r["step"] for r in metrics_log.read(tmp_path / "b" / "metrics.jsonl")]
    assert steps == [0, 10, 20, 30, 40]  # step 30 was logged before the interruption, then replaced


@pytest.mark.slow
def test_resume_can_extend_steps_but_not_change_the_spec(tmp_path):
    train(tiny_spec(steps=20), tmp_path / "run", progress=False)
    extended = train(tiny_spec(steps=40), tmp_path / "run", resume=True, progress=False)
    assert int(extended.step) == 40
    with pytest.raises(RunDirectoryError, match="spec differs"):
        train(tiny_spec(steps=60, lr=1e-2), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(RunDirectoryError, match="spec differs") as refused:
        train(tiny_spec(steps=60, lr=1e-2), tmp_path / "run", resume=True, progress=False)
    saved_lr = toymi.Spec.load(tmp_path / "run" / "spec.toml").train.lr
    assert f"train.lr: the run has {saved_lr!r}, this spec has 0.01" in str(refused.value)  # names the key, both values
    assert "train.steps:" not in str(refused.value)  # steps may differ, so it is not listed


def test_existing_run_is_never_overwritten(tmp_path):
    train(tiny_spec(steps=10, eval_every=10, checkpoint_every=10), tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        train(tiny_spec(), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_train_or_load_trains_once_then_reuses_the_same_experiment_only(tmp_path):
    spec = tiny_spec(steps=10, eval_every=10, checkpoint_every=10)
    first = toymi.train_or_load(spec, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    again = toymi.train_or_load(spec, tmp_path / "run")  # loaded, not retrained
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    assert leaves_equal(first.model, again.model) and again.steps == [0, 10]
    with pytest.raises(RunDirectoryError, match="spec differs"):
        toymi.train_or_load(tiny_spec(steps=10, eval_every=10, checkpoint_every=10, lr=1e-2), tmp_path / "run")


@pytest.mark.slow
def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr warms up from 0, so the first updates are tiny; a huge peak lr then blows the weights up.
    spec = tiny_spec(lr=1e30, warmup_steps=1000, steps=200, eval_every=1, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at step (\d+)") as info:
        train(spec, tmp_path / "run", progress=False)
    bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    checkpoints = Checkpoints(tmp_path / "run" / "checkpoints")
    rows = metrics_log.read(tmp_path / "run" / "metrics.jsonl")
    finite = {r["step"] for r in rows if np.isfinite([r["train_loss"], r["test_loss"]]).all()}
    last = max(s for s in checkpoints.steps() if s in finite)  # a checkpoint saved with NaN metrics is not "good"
    assert last is not None and last <= bad_step
    assert f"last good checkpoint is step {last}" in str(info.value)
    state = checkpoints.restore(last, like=abstract_state(spec))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))
    checkpoints.close()


@pytest.mark.slow
def test_capture_inside_the_compiled_training_step():
    """A loss that penalises captured activations trains through the same compiled scan."""
    from toymi.tasks import masked_cross_entropy
    from toymi.experiment import make_optimizer
    from toymi.experiment.training import train_chunk_for
    from toymi.train import init_state, make_train_chunk

    spec = tiny_spec()
    task, optimizer = spec.build_task(), make_optimizer(spec.train)

    def resid_norm(model, batch):
        _, acts = model.run(batch.tokens, capture=["resid_post"])
        return (acts["resid_post"] ** 2).mean()

    def penalised(model, task, batch):
        logits, _ = model.run(batch.tokens)
        return masked_cross_entropy(logits, batch) + 10.0 * resid_norm(model, batch)

    def twice(chunk):  # 20 steps as two 10-step chunks: the plain one is `train`'s own (compiled once per process)
        mid, first = chunk(state, task)
        end, second = chunk(mid, task)
        return end, np.concatenate([first, second])

    state = init_state(spec.model, optimizer, seed=0)
    plain_state, plain_losses = twice(train_chunk_for(spec.train))
    pen_state, pen_losses = twice(make_train_chunk(optimizer, 10, loss=penalised))
    # step 0's loss is the plain loss plus the penalty at initialisation
    np.testing.assert_allclose(pen_losses[0], plain_losses[0] + 10.0 * resid_norm(state.model, task.train), rtol=1e-5)
    assert resid_norm(pen_state.model, task.train) < 0.5 * resid_norm(plain_state.model, task.train)


@pytest.mark.slow
def test_runs_that_differ_in_seed_or_adamw_numbers_share_one_compiled_chunk(tmp_path):
    """The chunk reads AdamW's numbers from the optimiser state it is given, so one compiled program serves both
    runs, and each still trains exactly as a chunk built from its own optimiser does."""
    from toymi.experiment.training import train_chunk_for
    from toymi.experiment.optimizer import make_optimizer
    from toymi.train.state import init_state
    from toymi.train.step import make_train_chunk

    a, b = tiny_spec(), tiny_spec(seed=3, lr=1e-2, weight_decay=0.5, beta2=0.98)
    assert train_chunk_for(a.train) is train_chunk_for(b.train)
    assert train_chunk_for(a.train) is not train_chunk_for(tiny_spec(warmup_steps=0).train)  # another schedule
    trained = train(b, tmp_path / "b", progress=False)
    optimizer = make_optimizer(b.train)
    state, task = init_state(b.model, optimizer, b.train.seed), b.build_task()
    own_chunk = make_train_chunk(optimizer, b.train.eval_every)
    for _ in range(b.train.steps // b.train.eval_every):
        state, _ = own_chunk(state, task)
    assert leaves_equal(trained, state)
