"""Scores of a parameter decomposition against a known mechanism (NumPy, after training).

- `column_mmcs_ml2r(W, P)`: APD/SPD's TMS measure on `W` `[d_out, n_features]` and subcomponent matrices `P`
  `[C, d_out, n_features]`: for each feature column j, the subcomponent whose column j has the best cosine with
  `W[:, j]`; MMCS is the mean of those cosines, ML2R the mean of that column's norm over `‖W[:, j]‖`.
- `alive_by_norm`: subcomponents whose `‖U_c V_cᵀ‖` is above a fraction of the largest.
- `alive_by_importance`: subcomponents whose causal importance exceeds a threshold on some input.
- `own_subcomponents(ci)`: from causal importance `[feature, C]` with one feature on at a time, which feature has
  exactly one important subcomponent, important for no other feature (its own).
- `exclusive(ci)`: which subcomponents are important on one input pattern and no other.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Float


def column_mmcs_ml2r(W: Float[Array, "d_out n"], P: Float[Array, "C d_out n"], min_norm: float = 1e-6
                     ) -> tuple[float, float]:
    """`(MMCS, ML2R)` over the columns of `W` with norm above `min_norm` (a feature the model dropped has no
    mechanism to find)."""
    W, P = np.asarray(W, np.float64), np.asarray(P, np.float64)
    if P.ndim != 3 or P.shape[1:] != W.shape:
        raise ValueError(f"P must be [C, {W.shape[0]}, {W.shape[1]}] to match W, got {P.shape}")
    w_norm = np.linalg.norm(W, axis=0)  # [n]
    p_norm = np.linalg.norm(P, axis=1)  # [C, n]
    cos = np.einsum("dn,cdn->cn", W, P) / np.maximum(w_norm * p_norm, 1e-30)  # signed: the column itself
    kept = w_norm > min_norm
    if not kept.any():
        raise ValueError("W has no nonzero column to score")
    best = cos.argmax(axis=0)
    cols = np.arange(W.shape[1])
    return float(cos[best, cols][kept].mean()), float((p_norm[best, cols] / np.maximum(w_norm, 1e-30))[kept].mean())


def alive_by_norm(norms: Float[Array, " C"], rel: float = 0.1) -> int:
    """Subcomponents with norm above `rel` × the largest."""
    norms = np.asarray(norms, np.float64)
    return int((norms > rel * norms.max()).sum())


def alive_by_importance(ci: Float[Array, "batch C"], threshold: float = 0.1) -> int:
    """Subcomponents with causal importance above `threshold` on at least one input."""
    return int((np.asarray(ci) > threshold).any(axis=0).sum())


def exclusive(ci: Float[Array, "pattern C"], threshold: float = 0.5) -> np.ndarray:
    """`[pattern, C]` True where subcomponent c is important (≥ `threshold`) on this pattern and on no other."""
    high = np.asarray(ci) >= threshold
    return high & (high.sum(axis=0, keepdims=True) == 1)


def own_subcomponents(ci: Float[Array, "feature C"], threshold: float = 0.5) -> np.ndarray:
    """`[feature]` the subcomponent that is feature i's own (−1 if none): the single subcomponent with importance ≥
    `threshold` when feature i alone is on, and that subcomponent is below `threshold` for every other feature."""
    high = np.asarray(ci) >= threshold
    first = high.argmax(axis=1)
    own = (high.sum(axis=1) == 1) & exclusive(ci, threshold)[np.arange(len(first)), first]
    return np.where(own, first, -1)
