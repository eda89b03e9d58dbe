"""Compressed computation (the residual MLP of `toymi.tasks.compressed_computation`) as a truth for SPD.

With one feature on at a time (value 1), each feature should make exactly one `W_in` subcomponent important, a
subcomponent no other feature uses (Bushnaq et al. 2025: 100 `W_in` subcomponents, one per feature, plus one rank-50
`W_out` component). `score_compressed` reports the fraction of features with a `W_in` subcomponent of their own
(`scoring.own_subcomponents`) per layer and in any layer, and the `W_out` subcomponents that any feature makes
important. `neuron_agreement` compares the neurons the decomposition says each feature uses with the model's own
single-feature ablations (the paper's neuron-contribution plots, as a number): on feature i alone, each neuron's
ablation effect on output i in the model whose decomposed matrices keep only the subcomponents important for
feature i, against the same effects in the model itself (`analysis.compressed_computation`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from toymi.analysis.compressed_computation import feature_ablation_effects, neuron_ablation_effects, neurons_used
from toymi.decompose.parameters.evaluate import causal_importances
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.scoring import alive_by_importance, own_subcomponents
from toymi.decompose.parameters.targets import model_targets, substitute
from toymi.model.residual_mlp import ResidualMLP


def feature_importance(model: ResidualMLP, params: SPDParams, value: float = 1.0) -> dict[str, np.ndarray]:
    """Causal importance `[feature, C]` per decomposed matrix, one feature on (at `value`) at a time."""
    targets = model_targets(model)
    x = value * jnp.eye(model.config.n_features)
    return {t.name: np.asarray(g) for t, g in zip(targets, causal_importances(params, model, targets, x))}


def score_compressed(model: ResidualMLP, params: SPDParams, threshold: float = 0.5) -> dict[str, float]:
    """`own_fraction.<l>` (features with a `W_in.<l>` subcomponent of their own), `own_fraction` (their mean over
    layers), `own_fraction_any_layer` (features with one in some layer), `w_out_used.<l>` (`W_out.<l>` subcomponents
    important for some feature), `neuron_agreement` / `neurons_used_match` (`neuron_agreement`), and `success`
    (the truth's bar: every feature has its own subcomponent in every layer)."""
    ci = feature_importance(model, params)
    layers = range(model.config.n_layers)
    has_own = np.stack([own_subcomponents(ci[f"W_in.{l}"], threshold) >= 0 for l in layers])  # [layer, feature]
    out = {}
    for l in layers:
        out[f"own_fraction.{l}"] = float(has_own[l].mean())
        out[f"w_out_used.{l}"] = float(alive_by_importance(ci[f"W_out.{l}"], threshold))
    out["own_fraction"] = float(has_own.mean(1).mean())
    out["own_fraction_any_layer"] = float(has_own.any(0).mean())
    out["success"] = float(out["own_fraction"] == 1.0)  # the bar: every feature its own subcomponent, every layer
    return out | neuron_agreement(model, params, threshold, ci)


@eqx.filter_jit
def _masked_effects(model: ResidualMLP, params: SPDParams, masks: list) -> jax.Array:
    """`[feature, layer, d_mlp]`: feature i's single-neuron ablation effects in the model whose decomposed matrices
    are `U diag(masks[t][i]) Vᵀ` (one vmapped, compiled call over the features)."""
    targets = model_targets(model)

    def one(i, feature_masks):
        weights = [c.weight(m) for c, m in zip(params.components, feature_masks, strict=True)]
        return feature_ablation_effects(substitute(model, targets, weights), i)

    return jax.vmap(one)(jnp.arange(model.config.n_features), masks)


def neuron_agreement(model: ResidualMLP, params: SPDParams, threshold: float = 0.5,
                     ci: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """`neuron_agreement`: the mean over features of the cosine between the masked model's single-neuron ablation
    effects and the model's own (module docstring; masks: causal importance ≥ `threshold` on the feature alone, as
    0/1; effects below 1e-5 count as 0), 0 where the masked model's are all zero; features whose own effects are all
    zero (served by no neuron) are left out. `neurons_used_match`: the fraction of those features whose
    `neurons_used` maps agree exactly. `ci`: `feature_importance(model, params)` when the caller has it."""
    ci = feature_importance(model, params) if ci is None else ci
    masks = [(jnp.asarray(ci[t.name]) >= threshold).astype(jnp.float32) for t in model_targets(model)]
    effects = _masked_effects(model, params, masks), neuron_ablation_effects(model)  # [feature, layer, d_mlp]
    match = np.all(np.asarray(neurons_used(effects[0]) == neurons_used(effects[1])), axis=(1, 2))
    # below 1e-5 (the outputs are of order 1) an effect is float32 rounding, whose direction means nothing
    spd, own = (np.where(e < 1e-5, 0.0, e).reshape(model.config.n_features, -1)
                for e in (np.asarray(e, np.float64) for e in effects))
    served = np.linalg.norm(own, axis=1) > 0
    cos = (spd * own).sum(1) / np.maximum(np.linalg.norm(spd, axis=1) * np.linalg.norm(own, axis=1), 1e-30)
    return {"neuron_agreement": float(cos[served].mean()) if served.any() else float("nan"),
            "neurons_used_match": float(match[served].mean()) if served.any() else float("nan")}
