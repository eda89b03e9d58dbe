"""`init`'s host-side threefry: the Random123 known answers, and `split_keys` equal to `jax.random.split` for many
keys (a split compiles nothing, so it must be right for every key, not only the ones the model tests use)."""

import jax
import numpy as np
import pytest

from toymi.model import init


@pytest.mark.parametrize("key, counter, expected", [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry2x32_known_answers(key, counter, expected):
    """Random123's known-answer vectors for threefry2x32_20 (the ones jax's own tests use)."""
    x0, x1 = init._threefry2x32(np.uint32(key[0]), np.uint32(key[1]), np.array([counter[0]], np.uint32),
                                np.array([counter[1]], np.uint32))
    assert (int(x0[0]), int(x1[0])) == expected


@pytest.mark.parametrize("n", [1, 5, 130])
def test_split_equals_jax_for_many_keys(n):
    seeds = np.random.default_rng(n).integers(0, 2**31, 48)
    keys = jax.vmap(jax.random.PRNGKey)(seeds)
    plain = np.asarray(jax.vmap(lambda k: jax.random.split(k, n))(keys))  # one compile for all 48 keys
    host = np.stack([np.asarray(init.split_keys(k, n)) for k in np.asarray(keys)])
    np.testing.assert_array_equal(host, plain)
