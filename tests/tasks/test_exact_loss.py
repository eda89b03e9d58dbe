"""The exact cross-entropy: float32 that keeps its precision where `log_softmax` rounds to multiples of 1.2e-7."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.tasks.base import Batch, exact_token_nll, masked_cross_entropy, token_nll


def _float64_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -np.take_along_axis(logprobs, targets[..., None], -1)[..., 0]


@pytest.mark.slow
def test_exact_on_confident_logits_where_log_softmax_rounds():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 113)).astype(np.float32)
    targets = rng.integers(0, 113, 64)
    logits[np.arange(64), targets] += rng.uniform(18, 30, 64).astype(np.float32)  # losses ~1e-6 .. 1e-11
    reference = _float64_nll(logits, targets)
    exact = np.asarray(exact_token_nll(jnp.asarray(logits), jnp.asarray(targets)), np.float64)
    plain = np.asarray(token_nll(jnp.asarray(logits), jnp.asarray(targets)), np.float64)
    # The margins l_j - l_y are rounded to float32 (|l| ~ 30: ~2e-6 absolute), which bounds the relative error.
    np.testing.assert_allclose(exact, reference, rtol=1e-4)
    assert reference.min() < 1e-9
    assert np.max(np.abs(plain / reference - 1)) >= 0.99  # float32 log_softmax rounds some of them to 0


@pytest.mark.slow
def test_exact_equals_standard_on_ordinary_logits_and_gradients():
    key1, key2 = jax.random.split(jax.random.PRNGKey(1))
    logits = 3 * jax.random.normal(key1, (4, 5, 17))
    batch = Batch(jnp.zeros((4, 5), jnp.int32), jax.random.randint(key2, (4, 5), 0, 17),
                  (jnp.arange(5) % 2 == 0).astype(jnp.float32)[None].repeat(4, 0))
    np.testing.assert_allclose(masked_cross_entropy(logits, batch, exact=True), masked_cross_entropy(logits, batch),
                               rtol=1e-6)
    g_exact = jax.grad(lambda x: masked_cross_entropy(x, batch, exact=True))(logits)
    g_plain = jax.grad(lambda x: masked_cross_entropy(x, batch))(logits)
    np.testing.assert_allclose(g_exact, g_plain, atol=1e-7)
    assert np.all(np.isfinite(g_exact))


@pytest.mark.slow
def test_exact_is_stable_for_wrong_confident_predictions():
    logits = jnp.array([[0.0, 200.0, -50.0]])
    np.testing.assert_allclose(exact_token_nll(logits, jnp.array([0])), [200.0], rtol=1e-6)


@pytest.mark.slow
def test_modular_task_loss_option():
    modular = toymi.tasks.task_class("modular_arithmetic", {})
    standard, exact = modular(p=7, frac_train=0.5), modular(p=7, frac_train=0.5, loss="exact")
    assert standard.loss_kind == "standard" and exact.loss_kind == "exact"
    with pytest.raises(ValueError, match="loss must be one of"):
        modular(p=7, loss="float64")
    logits = jnp.zeros((2, 1, 7)).at[:, 0, 3].set(40.0)
    batch = Batch(jnp.zeros((2, 3), jnp.int32), jnp.full((2, 1), 3), jnp.ones((2, 1)))
    assert float(standard.metrics(logits, batch)["loss"]) == 0.0  # float32 log_softmax rounds to exactly 0
    np.testing.assert_allclose(float(exact.metrics(logits, batch)["loss"]), 6 * np.exp(-40.0), rtol=1e-5)
