"""The geometry of a toy model of superposition: the quantities Elhage et al. (2022) plot, from its `W`.

`W` is `[d_hidden, n_features]` (`TMS.W`), so column `W[:, i]` is feature i's direction `W_i` in the bottleneck and
`Ŵ_i = W_i / ‖W_i‖`. Pure functions, arrays in, arrays out; vmap them over seeds or checkpoints.

- `dimensions_per_feature(W)`: m / ‖W‖²_F, the "dimensions per feature" of the density sweep.
- `feature_norms(W)`: ‖W_i‖, how strongly each feature is represented (≈1 learned, ≈0 dropped).
- `superposition(W)`: Σ_{j≠i} (Ŵ_i · W_j)², how much other features interfere along feature i's direction.
  A barely represented feature (‖W_i‖ ≈ 0) still has a direction, usually along the features that crowd it
  out, so read this next to `feature_norms`.
- `feature_dimensionality(W)`: D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)², the fraction of a dimension feature i gets:
  1 for a feature with a dimension of its own, 1/2 for an antipodal pair, 2/5 for a pentagon, 0 when dropped.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

_EPS = 1e-8  # a column this short counts as "not represented" (its direction is undefined)


def feature_norms(W: Float[Array, "d_hidden feature"]) -> Float[Array, " feature"]:
    """‖W_i‖ for every feature i."""
    return jnp.linalg.norm(W, axis=0)


def dimensions_per_feature(W: Float[Array, "d_hidden feature"]) -> Float[Array, ""]:
    """m / ‖W‖²_F: hidden dimensions per (effectively) represented feature."""
    return W.shape[0] / jnp.sum(W**2)


def _projections_squared(W: Float[Array, "d_hidden feature"]) -> Float[Array, "feature feature"]:
    """(Ŵ_i · W_j)² at [i, j]; rows of unrepresented features are 0."""
    norms = feature_norms(W)
    unit = W / jnp.where(norms > _EPS, norms, 1.0)  # zero columns stay zero rather than dividing by 0
    return (unit.T @ W) ** 2


def superposition(W: Float[Array, "d_hidden feature"]) -> Float[Array, " feature"]:
    """Σ_{j≠i} (Ŵ_i · W_j)²: interference on feature i's direction from every other feature."""
    p = _projections_squared(W)
    return p.sum(axis=1) - jnp.diagonal(p)


def feature_dimensionality(W: Float[Array, "d_hidden feature"]) -> Float[Array, " feature"]:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)² (the sum includes j = i); 0 for a feature that is not represented."""
    norms_sq = feature_norms(W) ** 2
    total = _projections_squared(W).sum(axis=1)
    represented = norms_sq > _EPS**2
    return jnp.where(represented, norms_sq / jnp.where(represented, total, 1.0), 0.0)


def geometry(W: Float[Array, "d_hidden feature"]) -> dict[str, Array]:
    """All of the above for one `W`, by name."""
    return {
        "dimensions_per_feature": dimensions_per_feature(W),
        "feature_norms": feature_norms(W),
        "feature_dimensionality": feature_dimensionality(W),
        "superposition": superposition(W),
    }
