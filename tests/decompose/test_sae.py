import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose import metrics
from toymi.decompose.sae import (
    BatchTopKSAE, JumpReLUSAE, TopKSAE, aux_k_loss, hyper, init_sae, stack_hypers, top_k_codes,
)
from toymi.decompose.straight_through import heaviside, jumprelu
from toymi.decompose.synthetic import feature_probabilities, sparse_dictionary
from toymi.decompose.fit import SAEConfig, make_trainer, train_saes
from toymi.errors import ConfigError


@pytest.mark.slow
def test_an_l1_sae_recovers_a_tiny_synthetic_dictionary():
    truth = sparse_dictionary(n_features=12, d=8, n_active=1.5, decay=0.99, seed=0)
    cfg = SAEConfig("relu", n_latents=24, steps=500, batch_size=256, lr=1e-2, normalise_decoder=True)
    run = train_saes(truth, cfg, stack_hypers([hyper(sparsity=0.3)]), jnp.array([0]))
    sae = run.member(0)
    assert metrics.mmcs(truth.features, sae.directions) > 0.95
    x = truth.sample(jax.random.PRNGKey(1), 2048)
    assert metrics.variance_explained(x, sae(x)) > 0.8  # below 1: L1 shrinks the codes


@pytest.mark.slow
def test_vmapped_training_of_two_configs_equals_training_each_alone():
    truth = sparse_dictionary(n_features=8, d=6, n_active=2.0, seed=1)
    cfg = SAEConfig("topk", n_latents=10, steps=15, batch_size=32, lr=1e-2, k_max=3, k_aux=4)
    hs = [hyper(k=2, aux_coef=1 / 32, dead_after=64), hyper(k=3, aux_coef=0.0, dead_after=64)]
    both = train_saes(truth, cfg, stack_hypers(hs), jnp.array([0, 1]))
    single = make_trainer(truth, cfg)  # one compile for both single-member runs
    for i, (h, seed) in enumerate(zip(hs, (0, 1))):
        saes, loss, _, since = single(jnp.array([seed]), stack_hypers([h]))
        np.testing.assert_allclose(both.loss[i], loss[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(both.member(i).W_dec, saes.W_dec[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(both.since_fired[i], since[0])


@pytest.mark.slow
def test_a_shared_data_stream_trains_each_member_as_it_would_alone():
    truth = sparse_dictionary(n_features=8, d=6, n_active=2.0, seed=2)
    cfg = SAEConfig("relu", n_latents=10, steps=10, batch_size=32, lr=1e-2)
    hs = [hyper(sparsity=0.1), hyper(sparsity=0.5)]
    both = train_saes(truth, cfg, stack_hypers(hs), jnp.array([3, 4]), data_seed=7)
    single = make_trainer(truth, cfg, shared_data=True)
    for i, (h, seed) in enumerate(zip(hs, (3, 4))):
        saes, loss, _, _ = single(jnp.array([seed]), stack_hypers([h]), jnp.asarray(7))
        np.testing.assert_allclose(both.loss[i], loss[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(both.member(i).W_dec, saes.W_dec[0], rtol=1e-4, atol=1e-5)
    assert not np.allclose(both.loss[0], both.loss[1])  # the members differ (L1), the data does not


@pytest.mark.slow
def test_topk_keeps_exactly_k_even_with_a_larger_static_k_max():
    key = jax.random.PRNGKey(0)
    h = hyper(k=3)
    sae = init_sae("topk", d=6, n_latents=20, key=key, h=h, k_max=7)
    sae = eqx.tree_at(lambda s: s.b_enc, sae, jnp.full(20, 10.0))  # every pre-activation positive
    x = jax.random.normal(jax.random.PRNGKey(1), (50, 6))
    z = sae.encode(x)
    np.testing.assert_array_equal((z != 0).sum(-1), 3)
    # the kept ones are the three largest pre-activations
    pre = sae.pre(x)
    np.testing.assert_allclose(jnp.sort(jnp.where(z != 0, pre, -jnp.inf), -1)[:, -3:], jnp.sort(pre, -1)[:, -3:])
    np.testing.assert_array_equal((top_k_codes(pre, jnp.asarray(5), 7) != 0).sum(-1), 5)


@pytest.mark.slow
def test_batch_topk_keeps_k_per_example_on_average_over_the_batch():
    h = hyper(k=2)
    sae = init_sae("batchtopk", d=6, n_latents=20, key=jax.random.PRNGKey(0), h=h, k_max=2)
    sae = eqx.tree_at(lambda s: s.b_enc, sae, jnp.full(20, 10.0))
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 6))
    z = sae.train_codes(x, h)
    assert int((z != 0).sum()) == 2 * 16
    assert len(set(np.asarray((z != 0).sum(-1)).tolist())) > 1  # examples share the budget unevenly
    assert isinstance(sae, BatchTopKSAE)


@pytest.mark.slow
def test_jumprelu_pseudo_derivatives_give_the_threshold_a_gradient():
    eps = jnp.asarray(0.001)
    pre = jnp.array([[1.0, 2.0, 0.5]])
    theta = jnp.array([1.0002, 1.0, 1.0])  # only the first latent is within ε/2 of its threshold
    d_l0 = jax.grad(lambda t: heaviside(pre, t, eps).sum())(theta)
    np.testing.assert_allclose(d_l0, [-1000.0, 0.0, 0.0])  # −(1/ε)·K((pre − θ)/ε)
    d_jump = jax.grad(lambda t: jumprelu(pre, t, eps).sum())(theta)
    np.testing.assert_allclose(d_jump, [-1000.2, 0.0, 0.0], rtol=1e-5)  # −(θ/ε)·K(...)
    d_pre = jax.grad(lambda p: jumprelu(p, theta, eps).sum())(pre)
    np.testing.assert_array_equal(d_pre, [[0.0, 1.0, 0.0]])  # straight through where active

    # through a whole SAE: the L0 penalty pushes thresholds up (negative gradient on log θ)
    h = hyper(sparsity=1.0, bandwidth=0.5)
    sae = init_sae("jumprelu", d=4, n_latents=8, key=jax.random.PRNGKey(0), h=h, init_threshold=0.3)
    assert isinstance(sae, JumpReLUSAE)
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 4))
    grad = jax.grad(lambda s: s.penalty(x, s.train_codes(x, h), h))(sae)
    assert jnp.all(grad.log_threshold <= 0) and jnp.any(grad.log_threshold < 0)


@pytest.mark.slow
def test_auxk_moves_only_dead_latents_and_nothing_when_none_is_dead():
    h = hyper(k=1)
    sae = init_sae("topk", d=5, n_latents=6, key=jax.random.PRNGKey(0), h=h, k_max=1, k_aux=2)
    assert isinstance(sae, TopKSAE)
    x = jax.random.normal(jax.random.PRNGKey(1), (32, 5))
    x_hat = sae(x)
    dead = jnp.array([0, 0, 0, 0, 1, 1])
    grad = eqx.filter_grad(lambda s: aux_k_loss(s, x, x_hat, dead))(sae)
    norms = jnp.linalg.norm(grad.W_dec, axis=-1)
    assert jnp.all(norms[:4] == 0) and jnp.all(norms[4:] > 0)
    none = eqx.filter_grad(lambda s: aux_k_loss(s, x, x_hat, jnp.zeros(6)))(sae)
    assert float(jnp.abs(none.W_dec).max()) == 0.0


def test_synthetic_probabilities_sum_to_the_expected_number_active():
    p = feature_probabilities(512, 5.0, 0.99)
    assert p.sum() == pytest.approx(5.0) and p[1] / p[0] == pytest.approx(0.99)
    truth = sparse_dictionary()
    assert truth.features.shape == (512, 256) and truth.published["mmcs"] == 0.997
    np.testing.assert_allclose(jnp.linalg.norm(truth.features, axis=-1), 1.0, rtol=1e-5)


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ConfigError, match="kind"):
        SAEConfig("gated", n_latents=4)
    with pytest.raises(ConfigError, match="k_max"):
        SAEConfig("topk", n_latents=4, k_max=5)
    with pytest.raises(ConfigError, match="hyperparameters"):
        hyper(k=0)
    truth = sparse_dictionary(n_features=4, d=3, n_active=1.0)
    with pytest.raises(ConfigError, match="exceeds k_max"):
        train_saes(truth, SAEConfig("topk", n_latents=4, k_max=1, steps=1), stack_hypers([hyper(k=2)]), [0])
