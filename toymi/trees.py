"""Stacking pytrees of one structure on a new leading axis (members of an ensemble, checkpoints of a run, tasks,
hyperparameters) and taking one entry back out."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from toymi.host import to_device


def stack(trees: Sequence) -> object:
    """Pytrees of one structure stacked on a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def stack_on_host(trees: Sequence) -> object:
    """`stack` for concrete arrays on one device (checkpoints restored from disk), stacked in numpy and moved back in
    one transfer per leaf: `jnp.stack` eagerly compiles a program per leaf shape (~2 s for a small transformer)."""
    return jax.tree.map(lambda *xs: to_device(np.stack([np.asarray(x) for x in xs])), *trees)


def unstack(tree, i: int) -> object:
    """Entry `i` of a stacked pytree (`-n <= i < n` for `n` entries; anything else is an IndexError)."""
    n = jax.tree.leaves(tree)[0].shape[0]
    if not -n <= i < n:
        raise IndexError(f"entry {i} out of range for a stack of {n}")
    return _take(tree, to_device(np.int32(i % n)))


@jax.jit
def _take(tree, i):
    # One program per tree structure, every entry reusing it; eagerly, `x[i]` compiles a slice and a squeeze per
    # distinct leaf shape (20 programs for a 10-leaf tree). `i` is in range (`unstack` checks it): traced, an index
    # out of range would be clamped.
    return jax.tree.map(lambda x: x[i], tree)
