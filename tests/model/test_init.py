"""`toymi.model.init` draws the same weights as the plain eager init it replaced (`scale * jax.random.normal` per
weight, `eqx.filter_vmap` over the blocks), bit for bit, for every transformer shape the tests use."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.model import init

CONFIGS = [
    dict(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, normalization="layernorm"),
    dict(d_vocab=114, d_vocab_out=113, n_ctx=3, n_layers=1, d_model=128, n_heads=4, d_mlp=512),
    dict(d_vocab=13, d_vocab_out=12, n_ctx=7, n_layers=1, d_model=12, n_heads=2, d_head=6, d_mlp=16),
    dict(d_vocab=5, n_ctx=4, n_layers=3, d_model=12, n_heads=2, d_head=3, d_mlp=0),
    dict(d_vocab=11, n_ctx=8, d_model=16, n_heads=2, d_mlp=0, init_scale=2.0),
    dict(d_vocab=11, n_ctx=6, n_layers=2, d_model=12, n_heads=2, d_mlp=32, normalization="rmsnorm",
         act_fn="gelu", positional_embedding="none"),
]


def plain_init(monkeypatch):
    monkeypatch.setattr(init, "normal", lambda key, shape, scale: scale * jax.random.normal(key, shape))
    monkeypatch.setattr(init, "split", lambda key, n=2: tuple(jax.random.split(key, n)))
    monkeypatch.setattr(init, "split_keys", lambda key, n: jax.random.split(key, n))
    monkeypatch.setattr(init, "stacked", lambda make, keys: eqx.filter_vmap(make)(keys))


@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.slow
def test_weights_are_bit_identical_to_the_plain_eager_init(kwargs, monkeypatch):
    config = toymi.ModelConfig(**kwargs)
    new = toymi.Transformer(config, jax.random.PRNGKey(7))
    with monkeypatch.context() as m:
        plain_init(m)
        old = toymi.Transformer(config, jax.random.PRNGKey(7))
    new_leaves, new_def = jax.tree.flatten(eqx.filter(new, eqx.is_array))
    old_leaves, old_def = jax.tree.flatten(eqx.filter(old, eqx.is_array))
    assert new_def == old_def
    for a, b in zip(new_leaves, old_leaves):
        assert a.dtype == b.dtype == jnp.float32 and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_a_draw_is_the_prefix_of_any_longer_draw():
    """What `init.normal` relies on: threefry's partitionable mode draws element i from the key and i alone."""
    key = jax.random.PRNGKey(3)
    for n in (1, 5, 48, 100):
        np.testing.assert_array_equal(np.asarray(init.normal(key, (n,), 1.0)), np.asarray(jax.random.normal(key, (n,))))
        assert np.array_equal(np.asarray(jax.random.normal(key, (128,)))[:n], np.asarray(jax.random.normal(key, (n,))))


def test_under_a_trace_it_is_the_plain_draw():
    f = jax.jit(lambda k: init.normal(k, (3, 4), 0.5))
    np.testing.assert_array_equal(np.asarray(f(jax.random.PRNGKey(1))),
                                  np.asarray(jax.jit(lambda k: 0.5 * jax.random.normal(k, (3, 4)))(jax.random.PRNGKey(1))))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 64, 65, 130])
def test_a_split_equals_jax_random_split(n):
    """`init.split_keys` / `init.split` (hashed on the host) are `jax.random.split`, as arrays and as a tuple."""
    key = jax.random.PRNGKey(11)
    plain = np.asarray(jax.random.split(key, n))
    np.testing.assert_array_equal(np.asarray(init.split_keys(key, n)), plain)
    np.testing.assert_array_equal(np.stack([np.asarray(k) for k in init.split(key, n)]), plain)
    assert all(isinstance(k, jax.Array) for k in init.split(key, n))
