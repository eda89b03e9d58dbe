"""Compressed computation (the residual MLP of `toymi.tasks.compressed_computation`) as a truth for SPD.

With one feature on at a time (value 1), each feature should make exactly one `W_in` subcomponent important, a
subcomponent no other feature uses (Bushnaq et al. 2025: 100 `W_in` subcomponents, one per feature, plus one rank-50
`W_out` component). `score_compressed` reports the fraction of features with a `W_in` subcomponent of their own
(`scoring.own_subcomponents`) per layer, and the `W_out` subcomponents that any feature makes important.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from toymi.decompose.parameters.evaluate import causal_importances
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.scoring import alive_by_importance, own_subcomponents
from toymi.decompose.parameters.targets import model_targets
from toymi.model.residual_mlp import ResidualMLP


def feature_importance(model: ResidualMLP, params: SPDParams, value: float = 1.0) -> dict[str, np.ndarray]:
    """Causal importance `[feature, C]` per decomposed matrix, one feature on (at `value`) at a time."""
    targets = model_targets(model)
    x = value * jnp.eye(model.config.n_features)
    return {t.name: np.asarray(g) for t, g in zip(targets, causal_importances(params, model, targets, x))}


def score_compressed(model: ResidualMLP, params: SPDParams, threshold: float = 0.5) -> dict[str, float]:
    """`own_fraction.<l>` (features with a `W_in.<l>` subcomponent of their own), `own_fraction` (their mean over
    layers), and `w_out_used.<l>` (`W_out.<l>` subcomponents important for some feature)."""
    ci = feature_importance(model, params)
    out = {}
    for l in range(model.config.n_layers):
        out[f"own_fraction.{l}"] = float((own_subcomponents(ci[f"W_in.{l}"], threshold) >= 0).mean())
        out[f"w_out_used.{l}"] = float(alive_by_importance(ci[f"W_out.{l}"], threshold))
    out["own_fraction"] = float(np.mean([out[f"own_fraction.{l}"] for l in range(model.config.n_layers)]))
    return out
