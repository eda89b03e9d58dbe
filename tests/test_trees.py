"""`toymi.trees`: stacking pytrees and taking one entry back out."""

import jax
import numpy as np
import pytest

from compile_log import compiled
from toymi.trees import stack, unstack


def test_unstack_is_each_entry_back_from_one_compiled_program(caplog):
    trees = [{f"w{k}": np.full((3, 5 + k), i, np.float32) for k in range(4)} | {"step": np.int32(i)}
             for i in range(6)]  # five leaves of four shapes
    stacked = stack([jax.tree.map(jax.device_put, t) for t in trees])
    with compiled(caplog) as compiles:
        entries = [unstack(stacked, i) for i in range(6)] + [unstack(stacked, -1)]
    assert len(compiles) <= 1, compiles  # one program for the structure (none if an earlier test compiled it)
    for got, want in zip(entries, trees + [trees[-1]], strict=True):
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert g.shape == np.shape(w)
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("i", [6, -7, 100])
def test_unstack_refuses_an_entry_out_of_range(i):
    stacked = stack([{"w": np.zeros(2, np.float32)}] * 6)
    with pytest.raises(IndexError, match=f"entry {i} out of range for a stack of 6"):
        unstack(stacked, i)
