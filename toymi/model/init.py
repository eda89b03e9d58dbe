"""Weight draws that build a model of a new shape without compiling a program per weight shape.

`normal(key, shape, scale)` equals `scale * jax.random.normal(key, shape)` bit for bit. Eagerly, jax compiles one
XLA program per distinct shape (the threefry hash and the inverse error function, ~0.1-0.3 s each on a CPU), which
made building a transformer of a new shape cost seconds. With threefry in its partitionable mode (jax's default),
element i of a draw depends only on the key and i, so the first n elements of a draw of any length >= n are the draw of
n elements: drawing a power-of-two length and slicing in numpy compiles one program per length class, shared by
every model (every weight of up to `SHARED_DRAW` numbers in one class), and the scaling is the same float32
multiply numpy does. Key splits work the same way (`split`, `split_keys`), and arrays reach the device with
`jax.device_put` (`jnp.asarray` of a numpy array compiles a copy program per shape). Under a trace (a vmapped or jitted init, as
sweeps use) numpy cannot see the values, so it falls back to the plain expression.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray


SHARED_DRAW = 1 << 16
SHARED_SPLIT = 16  # every split into at most this many keys shares one compiled program (64 compiled 2x slower)


def normal(key: PRNGKeyArray, shape: tuple[int, ...], scale: float) -> Float[Array, "..."]:
    """`scale * jax.random.normal(key, shape)` (float32), bit-identical, without a compile per new shape."""
    if isinstance(key, jax.core.Tracer) or not jax.config.jax_threefry_partitionable:
        return scale * jax.random.normal(key, shape)
    n = math.prod(shape)
    # The power of two >= n, and at least SHARED_DRAW: one compiled draw per length class, and every weight of a toy
    # model in the same class (a fresh process compiles one program, not one per size; drawing 65,536 numbers to
    # keep a few hundred costs well under a millisecond).
    length = max(SHARED_DRAW, 1 << max(n - 1, 0).bit_length())
    draw = np.asarray(jax.random.normal(key, (length,)))[:n].reshape(shape)
    return jax.device_put(np.float32(scale) * draw)


def split_keys(key: PRNGKeyArray, n: int) -> PRNGKeyArray:
    """`jax.random.split(key, n)`, bit-identical, without a compile per `n`: in threefry's partitionable mode the i-th
    key of a split depends only on the key and i, so the first n keys of a split into `SHARED_SPLIT` are the split
    into n. Under a trace, or with typed keys, it is the plain split."""
    if _traced_or_typed(key) or not jax.config.jax_threefry_partitionable:
        return jax.random.split(key, n)
    length = max(SHARED_SPLIT, 1 << max(n - 1, 0).bit_length())
    return jax.device_put(np.asarray(jax.random.split(key, length))[:n])


def split(key: PRNGKeyArray, n: int = 2) -> tuple[PRNGKeyArray, ...]:
    """`split_keys` as a tuple to unpack; eagerly the keys come apart in numpy (unpacking a JAX array compiles)."""
    keys = split_keys(key, n)
    if _traced_or_typed(keys):
        return tuple(keys)
    return tuple(jax.device_put(k) for k in np.asarray(keys))


def _traced_or_typed(key) -> bool:
    return isinstance(key, jax.core.Tracer) or jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def zeros(shape: int | tuple[int, ...]) -> Float[Array, "..."]:
    """`jnp.zeros(shape)` made in numpy: eagerly, `jnp.zeros` compiles a program per new shape."""
    return jax.device_put(np.zeros(shape, np.float32))


def ones(shape: int | tuple[int, ...]) -> Float[Array, "..."]:
    """`jnp.ones(shape)` made in numpy (see `zeros`)."""
    return jax.device_put(np.ones(shape, np.float32))


def stacked(make, keys: PRNGKeyArray):
    """`eqx.filter_vmap(make)(keys)`: one module per key with a leading axis on every array. Eagerly it builds each
    layer alone and stacks in numpy, so no program is compiled for the batched shapes (the draws are the same: a
    vmapped threefry draw is the per-key draw). Under a trace, or with typed keys, it is the vmap."""
    import equinox as eqx

    if _traced_or_typed(keys):
        return eqx.filter_vmap(make)(keys)
    layers = [make(jax.device_put(k)) for k in np.asarray(keys)]
    return jax.tree.map(lambda *xs: jax.device_put(np.stack([np.asarray(x) for x in xs])), *layers)
