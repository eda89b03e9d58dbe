import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.transcoder import Transcoder, fraction_variance_unexplained, mlp_transcoder, train_transcoder

A = jax.random.normal(jax.random.PRNGKey(42), (6, 4))  # the "MLP" to recover: y = x @ A


def linear_mlp(key, n):
    x = jax.random.normal(key, (n, 6))
    return x, x @ A


@pytest.mark.slow
def test_a_skip_transcoder_puts_a_linear_mlp_in_its_skip_and_leaves_the_latents_quiet():
    tc, history = train_transcoder(linear_mlp, Transcoder(6, 4, 8, jax.random.PRNGKey(0), skip=True),
                                   jax.random.PRNGKey(1), steps=600, batch_size=128, lr=1e-2, l1=1.0, log_every=100)
    x, y = linear_mlp(jax.random.PRNGKey(2), 2048)
    assert float(fraction_variance_unexplained(tc.predict, x, y)) < 1e-3
    np.testing.assert_allclose(tc.W_skip, A, atol=0.05)
    # the skip alone predicts y: the penalty left the (linear) work to it, not to the latents
    assert float(fraction_variance_unexplained(lambda v: v @ tc.W_skip + tc.b_dec, x, y)) < 1e-3
    assert history["loss"].shape == (6,) and history["fvu"][-1] < history["fvu"][0]


@pytest.mark.slow
def test_a_relu_transcoder_without_skip_recovers_a_linear_mlp_from_paired_latents():
    # y = x A is exactly sum_i ReLU(x_i) A_i - ReLU(-x_i) A_i: 12 latents suffice
    tc, _ = train_transcoder(linear_mlp, Transcoder(6, 4, 12, jax.random.PRNGKey(0)), jax.random.PRNGKey(1),
                             steps=500, batch_size=128, lr=1e-2, l1=1e-4, log_every=100)
    x, y = linear_mlp(jax.random.PRNGKey(2), 2048)
    assert float(fraction_variance_unexplained(tc.predict, x, y)) < 0.01


@pytest.mark.slow
def test_topk_keeps_exactly_k_latents_and_the_mlp_transcoder_is_the_mlp():
    tc = Transcoder(5, 3, 10, jax.random.PRNGKey(0), k=3)
    x = jax.random.normal(jax.random.PRNGKey(1), (50, 5))
    z = tc.encode(x)
    pre = x @ tc.W_enc + tc.b_enc
    # the k largest pre-activations, ReLU'd: k active unless fewer than k are positive
    np.testing.assert_array_equal((z > 0).sum(-1), jnp.minimum(3, (pre > 0).sum(-1)))
    np.testing.assert_allclose(z.max(-1), jnp.maximum(pre.max(-1), 0.0))

    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(3), 4)
    W_in, b_in = jax.random.normal(k1, (5, 7)), jax.random.normal(k2, (7,))
    W_out, b_out = jax.random.normal(k3, (7, 3)), jax.random.normal(k4, (3,))
    x = jax.random.normal(jax.random.PRNGKey(4), (20, 5))
    tc = mlp_transcoder(W_in, b_in, W_out, b_out)
    np.testing.assert_allclose(tc(x), jax.nn.relu(x @ W_in + b_in) @ W_out + b_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tc.directions, W_out)  # unnormalised decoder rows, as D1's SAEs
    assert (tc.d_in, tc.d_out, tc.n_latents) == (5, 3, 7)


@pytest.mark.slow
def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="k must be"):
        Transcoder(4, 4, 8, jax.random.PRNGKey(0), k=9)
    with pytest.raises(ValueError, match="n_latents must be a positive integer"):
        Transcoder(4, 4, 0, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="this transcoder needs"):
        train_transcoder(linear_mlp, Transcoder(5, 4, 8, jax.random.PRNGKey(0)), jax.random.PRNGKey(1), steps=100)
    with pytest.raises(ValueError, match="multiple of log_every"):
        train_transcoder(linear_mlp, Transcoder(6, 4, 8, jax.random.PRNGKey(0)), jax.random.PRNGKey(1), steps=150)
