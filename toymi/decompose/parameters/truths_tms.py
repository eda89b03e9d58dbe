"""TMS (5-2, 40-10, with or without the hidden identity) as a truth for SPD: W's columns are the mechanisms.

`score_tms` gives MMCS and ML2R of the `W_in` subcomponents (W in `W x`) against W's columns
(`scoring.column_mmcs_ml2r`; `mmcs_out`, `ml2r_out`: the `W_out` subcomponents, Wᵀ in `Wᵀ h`, against the same
columns), the number of subcomponents alive by norm and by causal importance per matrix (`W_hidden` too in the
identity variant), and the success flag of the issue's bar on `W_in`: MMCS ≥ 0.999 and ML2R in [0.98, 1.03].

Published (Bushnaq et al. 2025): MMCS 1.000 everywhere; ML2R 0.993 (5-2), 1.010 (40-10), 0.992 (5-2 + identity),
1.031 (40-10 + identity); 5 of C = 20 subcomponents alive for 5-2 (5 + 2 with the identity).
"""

from __future__ import annotations

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from toymi.decompose.parameters.evaluate import causal_importances
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.scoring import alive_by_importance, alive_by_norm, column_mmcs_ml2r
from toymi.decompose.parameters.targets import model_input_sampler, model_targets
from toymi.model.tms import TMS

PUBLISHED = {"tms 5-2": {"mmcs": 1.0, "ml2r": 0.993}, "tms 40-10": {"mmcs": 1.0, "ml2r": 1.010},
             "tms 5-2 id": {"mmcs": 1.0, "ml2r": 0.992}, "tms 40-10 id": {"mmcs": 1.0, "ml2r": 1.031}}
MMCS_BAR, ML2R_RANGE = 0.999, (0.98, 1.03)


def tms_truth_name(model: TMS) -> str:
    c = model.config
    return f"tms {c.n_features}-{c.d_hidden}" + (" id" if c.hidden_identity else "")


def score_tms(model: TMS, params: SPDParams, sample, key: PRNGKeyArray, n: int = 4096) -> dict[str, float]:
    """The TMS scores of one member's decomposition (`sample(key, n)`: model inputs for the importance counts)."""
    targets = model_targets(model)
    names = [t.name for t in targets]
    if len(params.components) != len(targets):
        raise ValueError(f"the decomposition has {len(params.components)} matrices; this model decomposes {names}")
    x = model_input_sampler(sample)(key, n)
    ci = causal_importances(params, model, targets, x)
    w_in, w_out = (params.components[names.index(n)] for n in ("W_in", "W_out"))
    mmcs, ml2r = column_mmcs_ml2r(model.W, w_in.matrices())
    # W_out is Wᵀ: feature j's mechanism is its row j, i.e. column j of each subcomponent's transpose
    mmcs_out, ml2r_out = column_mmcs_ml2r(model.W, w_out.matrices().transpose(0, 2, 1))
    out = {"mmcs": mmcs, "ml2r": ml2r, "mmcs_out": mmcs_out, "ml2r_out": ml2r_out,
           "alive_norm": float(alive_by_norm(w_in.norms())), "alive_importance": float(alive_by_importance(ci[0])),
           "alive_norm_out": float(alive_by_norm(w_out.norms())),
           "alive_importance_out": float(alive_by_importance(ci[names.index("W_out")]))}
    if "W_hidden" in names:
        i = names.index("W_hidden")
        out |= {"alive_norm_hidden": float(alive_by_norm(params.components[i].norms())),
                "alive_importance_hidden": float(alive_by_importance(ci[i]))}
    out["success"] = float(mmcs >= MMCS_BAR and ML2R_RANGE[0] <= ml2r <= ML2R_RANGE[1])
    return out


def one_hot_importance(model: TMS, params: SPDParams, value: float = 1.0) -> list[np.ndarray]:
    """Causal importance `[feature, C]` per matrix with one feature on (at `value`) at a time: the picture of which
    subcomponent each feature uses."""
    x = value * np.eye(model.config.n_features, dtype=np.float32)
    return [np.asarray(g) for g in causal_importances(params, model, model_targets(model), jax.numpy.asarray(x))]
