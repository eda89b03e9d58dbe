"""Weight draws that build a model of a new shape without compiling a program per weight shape.

`normal(key, shape, scale)` equals `scale * jax.random.normal(key, shape)` bit for bit. Eagerly, jax compiles one
XLA program per distinct shape (the threefry hash and the inverse error function, ~0.1-0.3 s each on a CPU), which
made building a transformer of a new shape cost seconds. With threefry in its partitionable mode (jax's default),
element i of a draw depends only on the key and i, so the first n elements of a draw of any length >= n are the draw of
n elements: drawing a power-of-two length and slicing in numpy compiles one program per length class, shared by
every model (every weight of up to `SHARED_DRAW` numbers in one class), and the scaling is the same float32
multiply numpy does. Key splits compile nothing: threefry is integer arithmetic, which numpy does exactly
(`split`, `split_keys`). Arrays reach the device with `toymi.host.to_device`, a transfer, not a compiled copy.
Under a trace (a vmapped or jitted init, as sweeps use) numpy cannot see the values, so it falls back to the plain
expression.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.host import to_device

SHARED_DRAW = 1 << 16


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
    return to_device(np.float32(scale) * draw)


def split_keys(key: PRNGKeyArray, n: int) -> PRNGKeyArray:
    """`jax.random.split(key, n)`, bit-identical, without compiling anything: in threefry's partitionable mode the
    i-th key of a split is the threefry-2x32 hash of the counter (0, i) under `key`, integer arithmetic that numpy
    does exactly (`_threefry2x32`). Under a trace, with typed keys, or in the original (non-partitionable) mode, it is
    the plain split."""
    if _traced_or_typed(key) or not jax.config.jax_threefry_partitionable:
        return jax.random.split(key, n)
    return to_device(_split_on_host(key, n))


def _split_on_host(key: PRNGKeyArray, n: int) -> np.ndarray:
    k = np.asarray(key, np.uint32)
    return np.stack(_threefry2x32(k[0], k[1], np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32)), axis=1)


def _threefry2x32(k0: np.uint32, k1: np.uint32, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Threefry-2x32 hash (20 rounds; Salmon et al. 2011) of the counter pairs `(x0, x1)` under the key `(k0, k1)`,
    in numpy uint32 arithmetic (wrapping, as XLA's): the function `jax._src.random.threefry2x32` lowers."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (np.uint32(k0), np.uint32(k1), np.uint32(k0) ^ np.uint32(k1) ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r)))
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def split(key: PRNGKeyArray, n: int = 2) -> tuple[PRNGKeyArray, ...]:
    """`split_keys` as a tuple to unpack (eagerly split on the host: unpacking a JAX array compiles)."""
    if _traced_or_typed(key) or not jax.config.jax_threefry_partitionable:
        return tuple(jax.random.split(key, n))
    return tuple(to_device(k) for k in _split_on_host(key, n))


def _traced_or_typed(key) -> bool:
    return isinstance(key, jax.core.Tracer) or jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def zeros(shape: int | tuple[int, ...]) -> Float[Array, "..."]:
    """`jnp.zeros(shape)` made in numpy: eagerly, `jnp.zeros` compiles a program per new shape."""
    return to_device(np.zeros(shape, np.float32))


def ones(shape: int | tuple[int, ...]) -> Float[Array, "..."]:
    """`jnp.ones(shape)` made in numpy (see `zeros`)."""
    return to_device(np.ones(shape, np.float32))


def stacked(make, keys: PRNGKeyArray):
    """`eqx.filter_vmap(make)(keys)`: one module per key with a leading axis on every array. Eagerly it builds each
    layer alone and stacks in numpy, so no program is compiled for the batched shapes (the draws are the same: a
    vmapped threefry draw is the per-key draw). Under a trace, or with typed keys, it is the vmap."""
    import equinox as eqx

    if _traced_or_typed(keys):
        return eqx.filter_vmap(make)(keys)
    layers = [make(to_device(k)) for k in np.asarray(keys)]
    return jax.tree.map(lambda *xs: to_device(np.stack([np.asarray(x) for x in xs])), *layers)
