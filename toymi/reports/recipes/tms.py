"""Toy models of superposition: how many dimensions each feature gets and how features share them."""

from __future__ import annotations

import numpy as np

from toymi.analysis.tms import geometry
from toymi.plot.tms import feature_directions_2d, tms_geometry_figure


def tms_recipe(run, report, smoke: bool) -> None:
    W = np.asarray(run.model.W)  # [d_hidden, feature]
    g = {k: np.asarray(v) for k, v in geometry(W).items()}
    importance = np.asarray(run.task.feature_importance)
    report.section("Feature geometry", f"{W.shape[1]} features in {W.shape[0]} dimensions. Dimensions per feature "
                   "= m / ‖W‖²_F; a feature's dimensionality D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² (1: a dedicated "
                   "dimension, 1/2: an antipodal pair, 2/5: a pentagon).")
    represented = g["feature_norms"] > 0.5
    report.numbers("geometry", {"dimensions per feature": float(g["dimensions_per_feature"]),
                                "features represented (‖W_i‖ > 0.5)": int(represented.sum()),
                                "D_i of represented features": np.round(g["feature_dimensionality"][represented], 3)})
    fig = tms_geometry_figure(W, g["feature_norms"], g["feature_dimensionality"], importance)
    report.figure("geometry", fig, "WᵀW, feature norms and feature dimensionalities")
    if W.shape[0] == 2:
        report.figure("directions", feature_directions_2d(W, importance),
                      "each feature's column of W (colour: importance)")
