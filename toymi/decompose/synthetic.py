"""The synthetic sparse dictionary of Sharkey, Braun & Millidge (2022), "Taking features out of superposition with
sparse autoencoders", as a `GroundTruth`.

`n_features` random unit directions in `d` dimensions (512 in 256 by default). Feature i is active with probability
p_i ∝ decay^i (0.99^i), scaled so that `n_active` (≈ 5) features are active on average; an active feature's
coefficient is U[0, 1). An activation vector is the coefficient-weighted sum of the active directions. The paper's
L1 SAE with a 2× dictionary recovers these with MMCS ≈ 0.997.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.decompose.ground_truth import GroundTruth
from toymi.errors import ConfigError
from toymi.validate import is_int


# MMCS (truth→learned) reported for methods on the 512→256 dictionary (Sharkey et al. 2022 and follow-ups, as
# collected in the project's TARGETS.md); TopK without AuxK: 0.63–0.74 (the midpoint stored).
PUBLISHED_MMCS = {"L1 SAE": 0.997, "TopK (no aux)": 0.685, "spherical k-means": 0.69, "FastICA": 0.38, "PCA": 0.21,
                  "random": 0.19}


def feature_probabilities(n_features: int, n_active: float, decay: float) -> np.ndarray:
    """p_i = c · decay^i with c chosen so that Σ p_i = `n_active` (the expected number of active features)."""
    raw = np.asarray(decay, np.float64) ** np.arange(n_features)
    p = raw * n_active / raw.sum()
    if p.max() > 1:
        raise ConfigError(f"n_active={n_active} with decay={decay} over {n_features} features needs a probability "
                          f"above 1 ({p.max():.3f}); lower n_active or raise decay")
    return p


def random_unit_directions(key: PRNGKeyArray, n: int, d: int) -> Float[Array, "n d"]:
    """`n` directions drawn uniformly on the unit sphere in `d` dimensions."""
    v = jax.random.normal(key, (n, d))
    return v / jnp.linalg.norm(v, axis=-1, keepdims=True)


def sparse_dictionary(n_features: int = 512, d: int = 256, n_active: float = 5.0, decay: float = 0.99,
                      seed: int = 0) -> GroundTruth:
    """Sharkey et al.'s synthetic dictionary as a `GroundTruth` (published MMCS 0.997 for a 2× L1 SAE).

    **Arguments:**

    - `n_features`, `d`: how many true features, in how many dimensions.
    - `n_active`: expected number of active features per sample.
    - `decay`: feature i's activation probability is proportional to `decay ** i`.
    - `seed`: draws the feature directions (samples come from the keys passed to `sample`).

    **Returns:** a `GroundTruth` with unit `features` `[n_features, d]` and `feature_scales` 0.5 (the mean active
    coefficient).
    """
    for name, value in (("n_features", n_features), ("d", d)):
        if not is_int(value) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not 0 < decay <= 1 or not n_active > 0:
        raise ConfigError(f"need 0 < decay <= 1 and n_active > 0, got decay={decay!r}, n_active={n_active!r}")
    features = random_unit_directions(jax.random.PRNGKey(seed), n_features, d)
    p = jnp.asarray(feature_probabilities(n_features, n_active, decay), jnp.float32)

    def sample(key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
        k_on, k_value = jax.random.split(key)
        on = jax.random.uniform(k_on, (n, n_features)) < p
        coefficients = jnp.where(on, jax.random.uniform(k_value, (n, n_features)), 0.0)
        return coefficients @ features

    paper = (n_features, d, n_active, decay) == (512, 256, 5.0, 0.99)  # the published numbers are for this one only
    published = {"mmcs": 0.997, "mcc": 0.997} if paper else {}
    by_method = {method: {"mmcs": v} for method, v in PUBLISHED_MMCS.items()} if paper else None
    return GroundTruth(name=f"synthetic {n_features}→{d}", sample=sample, d=d, features=features,
                       published=published, published_by_method=by_method, feature_scales=jnp.full(n_features, 0.5))
