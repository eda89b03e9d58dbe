"""`toymi.host`: host data onto the device without a compile, and one placement for a jitted loop's arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from compile_log import compiled
from toymi.host import committed, to_device
from toymi.tasks.render import as_tokens


@pytest.mark.parametrize("x, dtype", [(np.arange(5), None), (np.ones((2, 3)), None), (np.ones((2, 3)), np.int32),
                                      ([1, 2, 3], np.int32), (np.zeros(4, bool), None)])
def test_to_device_is_jnp_asarray_without_a_compile(x, dtype, caplog):
    expected = jnp.asarray(x, dtype)
    shape = (7, 11, 13)  # a shape nothing in this process has used
    with compiled(caplog) as compiles:
        got = to_device(x, dtype)
        fresh = to_device(np.zeros(shape, np.float64))
        tokens = as_tokens(list(range(17)))
    assert not compiles, compiles
    assert (got.dtype, got.weak_type, got.shape) == (expected.dtype, expected.weak_type, expected.shape)
    np.testing.assert_array_equal(got, expected)
    assert fresh.dtype == jnp.float32 and tokens.dtype == jnp.int32  # canonicalised as jnp's


def test_committed_puts_every_array_on_the_device_of_the_first_one_and_leaves_a_sharded_tree_alone():
    on_second = jax.device_put(jnp.ones(3), jax.devices()[1])
    tree = committed({"a": jnp.zeros(2), "b": (np.ones(4, np.float32), on_second)}, like=on_second)
    assert {d for x in jax.tree.leaves(tree) for d in x.devices()} == {jax.devices()[1]}
    assert all(x.committed for x in jax.tree.leaves(tree))
    mesh = Mesh(np.array(jax.devices()[:2]), ("members",))
    sharded = jax.device_put(jnp.ones((2, 3)), NamedSharding(mesh, PartitionSpec("members")))
    fresh = jnp.zeros(2)
    assert committed(fresh, like=sharded) is fresh  # spread over two devices: no single device to commit to

