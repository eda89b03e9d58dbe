"""Batches and samplers shared by the sparse-feature tasks (compressed computation, AND gates).

Each feature is active independently with probability `p`: for real-valued features the active value is uniform in
`[low, high)`, for boolean features it is 1. Everything is pure `jax.random`, so it runs on device inside the
training scan with static shapes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class FeatureBatch(eqx.Module):
    """Feature vectors and their targets."""

    x: Float[Array, "batch n_features"]
    y: Float[Array, "batch n_outputs"]

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def inputs(self) -> Float[Array, "batch n_features"]:
        """What a model reads: the feature vectors."""
        return self.x


def sparse_uniform(key: PRNGKeyArray, batch: int, n_features: int, p: float, low: float = -1.0,
                   high: float = 1.0) -> Float[Array, "batch n_features"]:
    """Each feature is `U[low, high)` with probability `p`, else exactly 0.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `batch`, `n_features`: the shape.
    - `p`: the probability that a feature is active.
    - `low`, `high`: the range of an active feature's value.

    **Returns:** `[batch, n_features]` float32.
    """
    k_on, k_value = jax.random.split(key)
    on = jax.random.bernoulli(k_on, p, (batch, n_features))
    return jnp.where(on, jax.random.uniform(k_value, (batch, n_features), minval=low, maxval=high), 0.0)


def sparse_boolean(key: PRNGKeyArray, batch: int, n_features: int, p: float) -> Float[Array, "batch n_features"]:
    """Each feature is 1.0 with probability `p`, else 0.0 (`[batch, n_features]` float32)."""
    return jax.random.bernoulli(key, p, (batch, n_features)).astype(jnp.float32)
