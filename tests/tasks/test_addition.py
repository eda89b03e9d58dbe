import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.experiment.spec import Spec
from toymi.tasks import Addition, make_task
from toymi.tasks.addition import (SUBTASKS, digits_of, enriched_digits, question_digits, random_digits,
                                  sequence_tokens, subtask_labels)
from toymi.experiment import train
from toymi.train import metrics_log


def tokens_of(a: int, b: int, n: int = 5) -> np.ndarray:
    return np.asarray(sequence_tokens(digits_of(a, n), digits_of(b, n)))


def labels_of(a: int, b: int, n: int = 5) -> dict[str, list[int]]:
    """Labels as 0/1 lists, column i for answer digit s_i (least significant first)."""
    return {k: np.asarray(v).astype(int).tolist() for k, v in subtask_labels(digits_of(a, n), digits_of(b, n)).items()}


@pytest.mark.slow
def test_sum9_cascade_04450_05550():
    # 4450 + 5550 = 10000: the tens make a carry, which cascades through the sum-9 hundreds and thousands.
    assert tokens_of(4450, 5550).tolist() == [0, 4, 4, 5, 0, 10, 0, 5, 5, 5, 0, 11, 0, 1, 0, 0, 0, 0]
    assert labels_of(4450, 5550) == {
        #      s0 s1 s2 s3 s4 s5
        "BA": [1, 1, 1, 1, 1, 0],
        "MC": [0, 1, 0, 0, 0, 0],  # 5 + 5 in the tens
        "MS": [0, 0, 1, 1, 0, 0],  # 4 + 5 in the hundreds and thousands
        "UC": [0, 0, 1, 0, 0, 0],  # the hundreds take the tens' carry directly
        "US": [0, 0, 0, 1, 1, 0],  # thousands and ten-thousands get it through sum-9 digits
    }


def test_full_cascade_99999_00001():
    assert tokens_of(99999, 1).tolist() == [9, 9, 9, 9, 9, 10, 0, 0, 0, 0, 1, 11, 1, 0, 0, 0, 0, 0]
    assert labels_of(99999, 1) == {
        "BA": [1, 1, 1, 1, 1, 0],
        "MC": [1, 0, 0, 0, 0, 0],
        "MS": [0, 1, 1, 1, 1, 0],
        "UC": [0, 1, 0, 0, 0, 0],
        "US": [0, 0, 1, 1, 1, 1],  # the carry reaches s5 through four sum-9 digits
    }


def test_no_carries_12345_54321():
    assert tokens_of(12345, 54321).tolist() == [1, 2, 3, 4, 5, 10, 5, 4, 3, 2, 1, 11, 0, 6, 6, 6, 6, 6]
    labels = labels_of(12345, 54321)
    assert labels["BA"] == [1, 1, 1, 1, 1, 0]
    assert all(labels[k] == [0] * 6 for k in ("MC", "MS", "UC", "US"))


def test_a_carry_that_is_not_a_cascade():
    # 15 + 85 = 100: the units make a carry and the sum-9 tens pass it on to s2.
    assert labels_of(15, 85, n=2)["US"] == [0, 0, 1]
    # 15 + 95 = 110: 1 + 9 = 10 makes its own carry; the units' carry is used directly, nothing cascades.
    assert labels_of(15, 95, n=2) == {"BA": [1, 1, 0], "MC": [1, 1, 0], "MS": [0, 0, 0], "UC": [0, 1, 1],
                                      "US": [0, 0, 0]}


@pytest.mark.slow
def test_labels_reconstruct_every_answer_digit():
    a, b = random_digits(jax.random.PRNGKey(3), (2000, 4))
    a, b = np.asarray(a), np.asarray(b)
    labels = {k: np.asarray(v) for k, v in subtask_labels(a, b).items()}
    carry_in = labels["UC"] | labels["US"]
    assert not (labels["UC"] & labels["US"]).any()
    tokens = np.asarray(sequence_tokens(a, b))
    answer = tokens[:, -5:][:, ::-1]  # s0..s4
    pad = np.zeros((2000, 1), int)
    expected = (np.concatenate([a + b, pad], axis=1) + carry_in) % 10
    np.testing.assert_array_equal(answer, expected)
    values = lambda d: (d * 10 ** np.arange(d.shape[1])).sum(1)  # noqa: E731
    np.testing.assert_array_equal(values(answer), values(a) + values(b))


@pytest.mark.slow
def test_question_digits_inverts_sequence_tokens():
    a, b = random_digits(jax.random.PRNGKey(0), (50, 3))
    a2, b2 = question_digits(sequence_tokens(a, b))
    np.testing.assert_array_equal(a2, a)
    np.testing.assert_array_equal(b2, b)


@pytest.mark.slow
def test_batch_layout_and_token_range():
    task = Addition(n_digits=3, batch_size=32, enriched=0.5)
    batch = task.train_batch(jax.random.PRNGKey(0))
    tokens, targets, mask = (np.asarray(x) for x in (batch.tokens, batch.targets, batch.loss_mask))
    assert tokens.shape == (32, 12) and task.model_dims() == {"d_vocab": 12, "d_vocab_out": 10, "n_ctx": 12}
    assert (tokens[:, 3] == 10).all() and (tokens[:, 7] == 11).all()
    digits = np.delete(tokens, [3, 7], axis=1)
    assert ((digits >= 0) & (digits <= 9)).all()
    assert task.loss_positions() == (7, 8, 9, 10)
    assert (mask == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0]).all()
    np.testing.assert_array_equal(targets[:, 7:11], tokens[:, 8:12])  # position i predicts token i + 1
    assert (targets[:, 7:11] <= 9).all()


@pytest.mark.slow
def test_sampler_is_deterministic_and_fresh_per_key():
    task = Addition(n_digits=4, batch_size=16, enriched=0.25)
    sample = eqx.filter_jit(lambda key: task.train_batch(key))  # as the engine calls it: traced, on device
    a, b, c = sample(jax.random.PRNGKey(0)), sample(jax.random.PRNGKey(0)), sample(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    # eval sets come from data_seed alone
    np.testing.assert_array_equal(Addition(n_digits=4, data_seed=7).test.tokens,
                                  Addition(n_digits=4, data_seed=7).test.tokens)
    assert not np.array_equal(Addition(n_digits=4, data_seed=7).test.tokens, Addition(n_digits=4).test.tokens)


@pytest.mark.slow
def test_enrichment_raises_carry_and_cascade_rates():
    shape = (20000, 5)
    natural = subtask_labels(*random_digits(jax.random.PRNGKey(0), shape))
    enriched = subtask_labels(*enriched_digits(jax.random.PRNGKey(0), shape))
    rate = lambda labels, k: float(labels[k][:, :5].mean())  # noqa: E731
    assert abs(rate(natural, "MS") - 0.10) < 0.01 and abs(rate(natural, "MC") - 0.45) < 0.01
    assert rate(enriched, "MS") > 0.45 and rate(enriched, "US") > 3 * rate(natural, "US")
    # the enriched rows of a training batch are the last round(enriched * batch_size)
    task = Addition(n_digits=5, batch_size=1000, enriched=0.3)
    labels = subtask_labels(*question_digits(task.train_batch(jax.random.PRNGKey(1)).tokens))
    assert task.n_enriched == 300
    assert float(labels["MS"][700:, :5].mean()) > 0.45 > 0.15 > float(labels["MS"][:700, :5].mean())


@pytest.mark.slow
def test_metrics_per_digit_and_whole_answer():
    task = Addition(n_digits=2, eval_size=4)
    batch = task.test.at_positions(task.loss_positions())
    perfect = jax.nn.one_hot(batch.targets, 10) * 100.0
    wrong_units = perfect.at[0, -1].set(jnp.roll(perfect[0, -1], 1))  # row 0: last column = s0 is wrong
    m = task.metrics(wrong_units, batch)
    assert float(m["answer_accuracy"]) == 0.75 and float(m["accuracy"]) == pytest.approx(11 / 12)
    assert float(m["digit0_accuracy"]) == 0.75 and float(m["digit1_accuracy"]) == 1.0
    assert float(m["digit2_accuracy"]) == 1.0
    assert float(m["digit0_loss"]) > 10 and float(m["digit1_loss"]) < 1e-3


@pytest.mark.slow
def test_facts_label_the_eval_sets():
    task = Addition(n_digits=3, eval_size=64)
    gt = task.facts()
    assert set(gt["labels"]) == {"test", "cascade"} and set(gt["labels"]["test"]) == set(SUBTASKS)
    assert gt["labels"]["cascade"]["US"].shape == (64, 4)
    assert gt["predicted_at"].tolist() == [10, 9, 8, 7]  # s0 is predicted last
    tokens = np.asarray(task.test.tokens)
    row = tokens[0]
    a = int("".join(map(str, row[0:3]))); b = int("".join(map(str, row[4:7])))  # noqa: E702
    assert np.asarray(gt["labels"]["test"]["MC"][0]).astype(int).tolist() == labels_of(a, b, 3)["MC"]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"n_digits must be an integer >= 1, got 0.*enriched must be a fraction "
                                         r"in \[0, 1\], got 1.5"):
        Addition(n_digits=0, enriched=1.5)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 2.5"):
        make_task("addition", batch_size=2.5)
    with pytest.raises(KeyError, match=r"unknown settings \['digits'\]"):
        make_task("addition", digits=3)
    with pytest.raises(ValueError, match="does not have at most 2 digits"):
        digits_of(100, 2)


@pytest.mark.slow
@pytest.mark.long(17)
def test_a_tiny_model_learns_addition(tmp_path):
    spec = Spec.from_dict({
        "task": {"name": "addition", "n_digits": 2, "batch_size": 128, "eval_size": 256},
        "model": {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_mlp": 128, "normalization": "layernorm"},
        "train": {"steps": 300, "lr": 3e-3, "eval_every": 100, "checkpoint_every": 300, "warmup_steps": 20},
    })
    train(spec, tmp_path / "run", progress=False)
    m = metrics_log.as_arrays(metrics_log.read(tmp_path / "run" / "metrics.jsonl"))
    # chance: 10% for s0 and s1, 55% for s2 (0 unless the tens carry), so about 0.6% for a whole answer
    assert m["test_accuracy"][-1] > 0.8 and m["test_answer_accuracy"][-1] > 0.5
    assert m["test_digit0_accuracy"][-1] > 0.5 and m["test_digit1_accuracy"][-1] > 0.5
    assert m["test_loss"][-1] < 0.3 * m["test_loss"][0]
