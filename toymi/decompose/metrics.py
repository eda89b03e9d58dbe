"""How well a decomposition recovers known features, and how good a sparse code it is.

Direction metrics compare learned rows `[n_learned, d]` with true rows `[n_true, d]` by absolute cosine (a feature
and its negation are the same direction; baselines like PCA and ICA have no sign):

- `mmcs(a, b)`: mean over rows of `a` of the best |cos| with any row of `b`. `mmcs(truth, learned)` asks "is every
  true feature found?"; `mmcs(learned, truth)` asks "is every latent a true feature?".
- `hungarian_mcc`: the one-to-one version: the assignment maximising total |cos| (scipy's `linear_sum_assignment`),
  mean matched |cos|. Lower than `mmcs(truth, learned)` when one latent is the best match of several truths.
- `fraction_recovered`: true features whose best |cos| exceeds a threshold (0.9).
- `ml2r`: mean over true features of ‖best-matching learned component‖ / ‖true component‖ (APD/SPD's shrinkage
  measure; 1 is unbiased, below 1 is shrinkage).

Code metrics: `variance_explained` (1 − MSE / variance), `l0` (mean active latents), `dead_fraction` (latents never
active on the sample).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Float
from scipy.optimize import linear_sum_assignment


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.where(norms > 0, rows / np.where(norms > 0, norms, 1.0), 0.0)  # zero rows stay zero (cos 0)


def _rows(name: str, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty [n, d] array of rows, got shape {x.shape}")
    return x


def abs_cosines(a: Float[Array, "n_a d"], b: Float[Array, "n_b d"]) -> np.ndarray:
    """`[n_a, n_b]` absolute cosine similarities between the rows of `a` and of `b`."""
    a, b = _rows("a", a), _rows("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"rows must have the same width, got {a.shape[1]} and {b.shape[1]}")
    return np.abs(_unit(a) @ _unit(b).T)


def mmcs(a: Float[Array, "n_a d"], b: Float[Array, "n_b d"]) -> float:
    """Mean over the rows of `a` of the max |cos| with any row of `b` (mean max cosine similarity, from `a`'s side)."""
    return float(abs_cosines(a, b).max(axis=1).mean())


def hungarian_mcc(learned: Float[Array, "n_learned d"], truth: Float[Array, "n_true d"]) -> float:
    """Mean |cos| over the one-to-one matching of learned and true rows that maximises the total (min(n_learned,
    n_true) pairs)."""
    cos = abs_cosines(truth, learned)
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


def fraction_recovered(learned: Float[Array, "n_learned d"], truth: Float[Array, "n_true d"],
                       threshold: float = 0.9) -> float:
    """Fraction of true features whose best |cos| with a learned row exceeds `threshold`."""
    return float((abs_cosines(truth, learned).max(axis=1) > threshold).mean())


def ml2r(learned_components: Float[Array, "n_learned d"], true_components: Float[Array, "n_true d"]) -> float:
    """Mean over true components of the norm of the best-matching (by |cos|) learned component over the true norm.

    Components carry their typical scale: for an SAE, decoder row × the latent's mean activation when active; for
    the truth, unit feature × its `feature_scales` entry.
    """
    learned, truth = _rows("learned_components", learned_components), _rows("true_components", true_components)
    best = abs_cosines(truth, learned).argmax(axis=1)
    truth_norms = np.linalg.norm(truth, axis=-1)
    if np.any(truth_norms == 0):
        raise ValueError("true components must be nonzero to measure a norm ratio")
    return float((np.linalg.norm(learned[best], axis=-1) / truth_norms).mean())


def variance_explained(x: Float[Array, "n d"], x_hat: Float[Array, "n d"]) -> float:
    """1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖²."""
    x, x_hat = np.asarray(x, np.float64), np.asarray(x_hat, np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    return float(1.0 - ((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum())


def l0(codes: Float[Array, "n n_latents"]) -> float:
    """Mean number of nonzero latents per sample."""
    return float((np.asarray(codes) != 0).sum(axis=-1).mean())


def dead_fraction(codes: Float[Array, "n n_latents"]) -> float:
    """Fraction of latents that are zero on every sample."""
    return float((~(np.asarray(codes) != 0).any(axis=0)).mean())


def mean_active(codes: Float[Array, "n n_latents"]) -> np.ndarray:
    """`[n_latents]` each latent's mean |code| over the samples where it is active (0 if never): its typical scale."""
    codes = np.abs(np.asarray(codes, np.float64))
    active = codes != 0
    return codes.sum(axis=0) / np.maximum(active.sum(axis=0), 1)
