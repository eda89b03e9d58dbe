"""`Task.sample(key, n)`: one batch type per task, exactly `n` examples, the draws the tasks' samplers make; and
`Task.model_inputs(batch, kind)`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.tasks import ModularArithmetic
from toymi.tasks.and_gates import AndGates, encode_tokens
from toymi.tasks.base import Batch
from toymi.tasks.compressed_computation import CompressedComputation
from toymi.tasks.features import FeatureBatch
from toymi.tasks.induction import Induction
from toymi.tasks.tms import ToyModelsOfSuperposition, sample_features

KEY = jax.random.PRNGKey(7)


@pytest.mark.slow  # eager draws compile op by op: seconds on a busy CPU
@pytest.mark.parametrize("task, batch_type", [
    (ToyModelsOfSuperposition(n_features=5, eval_size=4), FeatureBatch),
    (CompressedComputation(n_features=6, n_eval=4), FeatureBatch),
    (AndGates(n_features=4, n_eval=4), FeatureBatch),
    (Induction(vocab=12, subseq_len=3, n_repeats=2, batch_size=4, eval_size=4), Batch),
    (ModularArithmetic(p=7), Batch),
])
def test_sample_gives_n_examples_of_the_training_batch_type(task, batch_type):
    batch = task.sample(KEY, 13)
    assert type(batch) is batch_type and type(task.train_batch(KEY)) is batch_type and len(batch) == 13
    np.testing.assert_array_equal(task.model_inputs(batch, task.model_kinds[0]), batch.inputs)


@pytest.mark.slow
def test_tms_sample_is_the_feature_draw_and_its_own_target():
    task = ToyModelsOfSuperposition(n_features=6, feature_probability=0.3, n_correlated_pairs=1, eval_size=4)
    batch = task.sample(KEY, 50)
    np.testing.assert_array_equal(batch.x, sample_features(KEY, 50, 6, task.feature_probability, 1, 0))
    np.testing.assert_array_equal(batch.y, batch.x)


@pytest.mark.slow
def test_induction_sample_is_the_training_draw_at_any_size():
    task = Induction(vocab=12, subseq_len=3, n_repeats=2, batch_size=4, eval_size=4)
    np.testing.assert_array_equal(task.sample(KEY, 4).tokens, task.train_batch(KEY).tokens)


@pytest.mark.slow  # eager draws compile op by op: seconds on a busy CPU
@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_modular_sample_draws_uniform_pairs_with_the_tasks_answers(op):
    p = 7
    task = ModularArithmetic(p=p, op=op)
    batch = task.sample(KEY, 400)
    k_a, k_b = jax.random.split(KEY)  # the pairs' draws: a from [0, p), b from [1, p) for division
    a = np.asarray(jax.random.randint(k_a, (400,), 0, p))
    b = np.asarray(jax.random.randint(k_b, (400,), 1 if op == "/" else 0, p))
    tokens = np.asarray(batch.tokens)
    np.testing.assert_array_equal(tokens, np.stack([a, b, np.full(400, p)], axis=1))
    expected = {"+": (a + b) % p, "-": (a - b) % p, "*": (a * b) % p,
                "/": (a * np.array([pow(int(v), p - 2, p) for v in b])) % p}[op]
    np.testing.assert_array_equal(np.asarray(batch.targets)[:, 2], expected)
    assert (np.asarray(batch.loss_mask) == [0, 0, 1]).all()


@pytest.mark.parametrize("op", ["+", "/"])
def test_modular_all_pairs_is_every_pair_a_major(op):
    p = 5
    task = ModularArithmetic(p=p, op=op)
    tokens = np.asarray(task.all_pairs().tokens)
    low = 1 if op == "/" else 0
    assert [tuple(t) for t in tokens] == [(a, b, p) for a in range(p) for b in range(low, p)]
    everything = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), task.train, task.test)
    seen = {tuple(t): int(y[2]) for t, y in zip(np.asarray(everything.tokens), np.asarray(everything.targets))}
    assert all(seen[tuple(t)] == int(y[2]) for t, y in zip(tokens, np.asarray(task.all_pairs().targets)))


@pytest.mark.slow
def test_default_sample_stacks_training_batches_and_truncates():
    """A task without its own sampler: `train_batch` under vmap over split keys, cut to `n`."""
    task = Induction(vocab=12, subseq_len=3, n_repeats=2, batch_size=4, eval_size=4)
    drawn = super(Induction, task).sample(KEY, 10)  # the base class's default
    keys = jax.random.split(KEY, 3)
    expected = np.concatenate([np.asarray(task.train_batch(k).tokens) for k in keys])[:10]
    np.testing.assert_array_equal(drawn.tokens, expected)


def test_and_gates_inputs_depend_on_the_model_kind():
    task = AndGates(n_features=4, n_eval=4)
    batch = task.sample(KEY, 3)
    np.testing.assert_array_equal(task.model_inputs(batch, "residual_mlp"), batch.x)
    np.testing.assert_array_equal(task.model_inputs(batch, "transformer"), encode_tokens(batch.x))
