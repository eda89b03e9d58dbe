import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.experiment.spec import Spec
from toymi.tasks import Induction, make_task
from toymi.tasks.induction import (first_occurrence_positions, induction_targets, offset_copy_body,
                                   previous_token_targets, repeated_positions)
from toymi.experiment import train
from toymi.train import metrics_log

# BOS=9, then 3 1 4 (first time), 7, 3 1 4 (copied), 5.  Positions: 0 1 2 3 4 5 6 7 8
HAND = jnp.array([9, 3, 1, 4, 7, 3, 1, 4, 5])


@pytest.mark.slow
def test_hand_built_sequence():
    # At position 5 (the second 3) an induction head attends to position 2, the token after the first 3 (a 1),
    # which is what comes next; likewise 6 -> 3 (a 4). At 7 (the second 4) it attends to 4, the 7, but 5 follows.
    assert induction_targets(HAND).tolist() == [-1, -1, -1, -1, -1, 2, 3, 4, -1]
    assert previous_token_targets(9).tolist() == [-1, 0, 1, 2, 3, 4, 5, 6, 7]
    # scored positions i predict token i + 1
    assert repeated_positions(HAND).astype(int).tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0]
    # position 4 predicts the second 3, which occurred before: neither first nor predictable by induction
    assert first_occurrence_positions(HAND).astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 0]


def test_most_recent_occurrence_wins():
    # 2 5 2 6 2: the second 2 attends to the 5 after the first; the third to the 6 after the second, not the 5
    assert induction_targets(jnp.array([2, 5, 2, 6, 2])).tolist() == [-1, -1, 1, -1, 3]


@pytest.mark.slow
def test_repeat_mode_layout():
    task = Induction(vocab=20, subseq_len=4, n_repeats=3, batch_size=8)
    batch = task.train_batch(jax.random.PRNGKey(0))
    tokens = np.asarray(batch.tokens)
    assert tokens.shape == (8, 13) and task.model_dims() == {"d_vocab": 21, "d_vocab_out": 20, "n_ctx": 13}
    assert (tokens[:, 0] == 20).all() and ((tokens[:, 1:] >= 0) & (tokens[:, 1:] < 20)).all()
    chunk = tokens[:, 1:5]
    np.testing.assert_array_equal(tokens[:, 5:9], chunk)
    np.testing.assert_array_equal(tokens[:, 9:13], chunk)
    assert all(len(set(row)) == 4 for row in chunk.tolist())  # distinct within the chunk
    np.testing.assert_array_equal(batch.targets[:, :-1], tokens[:, 1:])
    assert (np.asarray(batch.loss_mask) == [1] * 12 + [0]).all()  # loss_on="all": every position with a target
    gt = induction_targets(batch.tokens)
    assert (gt[:, 5:] == np.arange(2, 10)).all() and (gt[:, :5] == -1).all()
    assert task.loss_positions() == tuple(range(12))


@pytest.mark.slow
def test_random_offsets_mode_copies_one_chunk_later():
    body = np.asarray(offset_copy_body(jax.random.PRNGKey(0), 200, 5, 20, 50))
    for row in body:
        seen, repeats = {}, []
        for i, t in enumerate(row):
            if t in seen:
                repeats.append(i)
            else:
                seen[t] = i
        # exactly one run of 5 copied tokens, each a copy of the token 'offset' positions earlier
        assert len(repeats) == 5 and repeats == list(range(repeats[0], repeats[0] + 5))
        offsets = {i - seen[row[i]] for i in repeats}
        assert len(offsets) == 1 and offsets.pop() >= 5  # the copy never overlaps its source
    # the offsets vary across sequences (a fixed-offset head cannot solve this mode)
    gt = np.asarray(induction_targets(jnp.asarray(body)))
    lags = {int(i - gt[r, i] + 1) for r, i in zip(*np.nonzero(gt >= 0))}
    assert len(lags) > 5


@pytest.mark.slow
def test_random_period_mode_repeats_a_chunk_of_each_sequences_own_length():
    task = Induction(vocab=40, subseq_len=8, n_repeats=3, mode="random_period", min_subseq_len=3, batch_size=256,
                     loss_on="repeated", eval_size=4)
    batch = task.train_batch(jax.random.PRNGKey(0))
    tokens = np.asarray(batch.tokens)
    assert tokens.shape == (256, 25) and (tokens[:, 0] == 40).all()
    periods = []
    for row in tokens[:, 1:]:
        period = len(set(row.tolist()))  # the chunk's tokens are distinct, so the period is how many there are
        assert 3 <= period <= 8
        np.testing.assert_array_equal(row[period:], row[:-period])  # every token repeats the one a period back
        periods.append(period)
    assert set(periods) == set(range(3, 9))  # every allowed period occurs: no fixed offset solves the batch
    # from the first repeated token on (BOS, then a period of first occurrences), every position but the last
    # predicts a repeat
    expected = np.arange(25)[None, :] >= 1 + np.asarray(periods)[:, None]
    np.testing.assert_array_equal(np.asarray(batch.loss_mask), expected & (np.arange(25) < 24))
    assert set(task.eval_batches()) == {"test", "offsets"}


@pytest.mark.slow
def test_loss_on_repeated_masks_only_predictable_positions():
    task = Induction(vocab=30, subseq_len=5, n_repeats=4, mode="random_offsets", loss_on="repeated", bos=False,
                     batch_size=16, eval_size=4)
    batch = task.train_batch(jax.random.PRNGKey(2))
    assert batch.tokens.shape == (16, 20) and task.model_dims()["d_vocab"] == 30
    np.testing.assert_array_equal(batch.loss_mask, repeated_positions(batch.tokens))
    assert (np.asarray(batch.loss_mask).sum(1) == 4).all()  # a copy of 5 makes 4 predictable next tokens


@pytest.mark.slow
def test_sampler_is_deterministic_and_fresh_per_key():
    task = Induction(vocab=50, subseq_len=6, n_repeats=2, batch_size=4, mode="random_offsets")
    sample = eqx.filter_jit(lambda key: task.train_batch(key))  # as the engine calls it: traced, on device
    a, b, c = sample(jax.random.PRNGKey(0)), sample(jax.random.PRNGKey(0)), sample(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    assert set(Induction(data_seed=3).eval_batches()) == {"test", "offsets"}
    np.testing.assert_array_equal(Induction(data_seed=3).evals["test"].tokens,
                                  Induction(data_seed=3).evals["test"].tokens)


@pytest.mark.slow
def test_metrics_split_repeated_and_first_tokens():
    task = Induction(vocab=10, subseq_len=3, n_repeats=2, bos=True, eval_size=2)
    batch = task.evals["test"].at_positions(task.loss_positions())
    # a perfect copier: certain of the target at repeated positions, uniform elsewhere
    repeated = repeated_positions(task.evals["test"].tokens)[:, :-1]
    logits = jnp.where(repeated[..., None], jax.nn.one_hot(batch.targets, 10) * 50.0, 0.0)
    m = task.metrics(logits, batch)
    assert float(m["repeated_loss"]) < 1e-6 and float(m["repeated_accuracy"]) == 1.0
    assert float(m["first_loss"]) == pytest.approx(np.log(10), rel=1e-5)
    # last position (5 of 0..5) is repeated, early position (3 - 1) // 2 = 1 a first occurrence
    assert float(m["icl_score"]) == pytest.approx(-np.log(10), rel=1e-5)
    # 6 scored positions: 3 first (uniform), 1 repeated-but-unpredictable (uniform), 2 repeated (certain)
    assert float(m["loss"]) == pytest.approx(4 * np.log(10) / 6, rel=1e-5)


@pytest.mark.slow
def test_facts_for_eval_sets():
    task = Induction(vocab=40, subseq_len=4, n_repeats=3, eval_size=16)
    gt = task.facts()["attention_targets"]
    assert set(gt) == {"test", "offsets"}
    np.testing.assert_array_equal(gt["test"]["induction"], induction_targets(task.evals["test"].tokens))
    assert gt["test"]["previous_token"].shape == (16, 13) and (gt["test"]["previous_token"][:, 5] == 4).all()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"n_repeats must be an integer >= 2, got 1.*mode must be one of "
                                         r"\('repeat', 'random_period', 'random_offsets'\), got 'shuffle'"):
        Induction(n_repeats=1, mode="shuffle")
    with pytest.raises(ValueError, match="loss_on must be one of"):
        make_task("induction", loss_on="some")
    with pytest.raises(ValueError, match="needs 48 distinct tokens but vocab is 40"):
        Induction(vocab=40, mode="random_offsets")
    with pytest.raises(ValueError, match=r"'repeat' needs 24 distinct tokens but vocab is 20 \(its 'offsets' eval"):
        Induction(vocab=20, subseq_len=8, n_repeats=3)  # the chunk fits; the offsets eval set would not
    with pytest.raises(ValueError, match="bos must be true or false, got 1"):
        Induction(bos=1)
    with pytest.raises(ValueError, match="min_subseq_len applies to mode 'random_period' only"):
        Induction(min_subseq_len=4)
    with pytest.raises(ValueError, match=r"min_subseq_len \(20\) must be at most subseq_len \(16\)"):
        Induction(mode="random_period", min_subseq_len=20)


@pytest.mark.slow
def test_a_tiny_model_learns_to_copy(tmp_path):
    spec = Spec.from_dict({
        "task": {"name": "induction", "vocab": 16, "subseq_len": 6, "n_repeats": 2, "batch_size": 64,
                 "eval_size": 128},
        "model": {"n_layers": 2, "d_model": 32, "n_heads": 2, "d_mlp": 0},
        "train": {"steps": 300, "lr": 3e-3, "eval_every": 100, "checkpoint_every": 300},
    })
    train(spec, tmp_path / "run", progress=False)
    m = metrics_log.as_arrays(metrics_log.read(tmp_path / "run" / "metrics.jsonl"))
    # chance is ln(16) = 2.77 nats on every token
    assert m["test_repeated_loss"][-1] < 0.5 and m["test_repeated_loss"][-1] < 0.2 * m["test_first_loss"][-1]
    assert m["test_icl_score"][-1] < -1.5
