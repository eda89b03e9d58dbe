"""Weight draws that build a model of a new shape without compiling a program per weight shape.

`normal(key, shape, scale)` equals `scale * jax.random.normal(key, shape)` bit for bit. Eagerly, jax compiles one
XLA program per distinct shape (the threefry hash and the inverse error function, ~0.1-0.3 s each on a CPU), which
made building a transformer of a new shape cost seconds. With threefry in its partitionable mode (jax's default),
element i of a draw depends only on the key and i, so the first n elements of a draw of any length >= n are the draw of
n elements: drawing a power-of-two length and slicing in numpy compiles one program per length class, shared by
every model, and the scaling is the same float32 multiply numpy does. Under a trace (a vmapped or jitted init, as
sweeps use) numpy cannot see the values, so it falls back to the plain expression.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray


def normal(key: PRNGKeyArray, shape: tuple[int, ...], scale: float) -> Float[Array, "..."]:
    """`scale * jax.random.normal(key, shape)` (float32), bit-identical, without a compile per new shape."""
    if isinstance(key, jax.core.Tracer) or not jax.config.jax_threefry_partitionable:
        return scale * jax.random.normal(key, shape)
    n = math.prod(shape)
    length = 1 << max(n - 1, 0).bit_length()  # the power of two >= n: one compiled draw per length class
    draw = np.asarray(jax.random.normal(key, (length,)))[:n].reshape(shape)
    return jnp.asarray(np.float32(scale) * draw)


def zeros(shape: int | tuple[int, ...]) -> Float[Array, "..."]:
    """`jnp.zeros(shape)` made in numpy: eagerly, `jnp.zeros` compiles a program per new shape."""
    return jnp.asarray(np.zeros(shape, np.float32))


def ones(shape: int | tuple[int, ...]) -> Float[Array, "..."]:
    """`jnp.ones(shape)` made in numpy (see `zeros`)."""
    return jnp.asarray(np.ones(shape, np.float32))


def stacked(make, keys: PRNGKeyArray):
    """`eqx.filter_vmap(make)(keys)`: one module per key with a leading axis on every array. Eagerly it builds each
    layer alone and stacks in numpy, so no program is compiled for the batched shapes (the draws are the same: a
    vmapped threefry draw is the per-key draw). Under a trace, or with typed keys, it is the vmap."""
    import equinox as eqx

    if isinstance(keys, jax.core.Tracer) or jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return eqx.filter_vmap(make)(keys)
    layers = [make(jnp.asarray(k)) for k in np.asarray(keys)]
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *layers)
