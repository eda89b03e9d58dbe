"""Host (numpy) data onto the device without compiling anything.

Outside a trace, `jnp.asarray(np_array)` runs a one-op program (jax 0.10's `lax.stage`, or a `convert_element_type`
when a dtype is given), and XLA compiles one per distinct shape and dtype: ~20-30 ms each on a CPU, paid again in
every process. A task's batches, a planted model's weights or a stack of checkpoints have many shapes, so those
copies added up (the test suite compiled ~400 of them). `jax.device_put` of a numpy array is a plain transfer.
"""

from __future__ import annotations

import jax
import numpy as np
from jaxtyping import Array


def to_device(x, dtype=None) -> Array:
    """`jnp.asarray(x, dtype)` for host data (numpy arrays, lists, scalars), as a transfer rather than a compiled
    copy; the dtype is canonicalised as jnp's is (float64 to float32 unless x64 is on)."""
    return jax.device_put(np.asarray(x, dtype))


def committed(tree, like) -> object:
    """`tree` with every array committed to the one device `like`'s first array is on (unchanged when `like` is
    sharded over several). A jitted function called in a loop gets its own outputs, committed, back; a first call
    whose arrays mix committed ones (a model restored from a checkpoint) with uncommitted ones (a fresh step count,
    key or optimiser state) has another argument placement, which is another compile of the same program."""
    devices = next((x.devices() for x in jax.tree.leaves(like) if isinstance(x, jax.Array)), set())
    return jax.device_put(tree, next(iter(devices))) if len(devices) == 1 else tree
