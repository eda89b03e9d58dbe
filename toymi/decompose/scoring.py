"""Scoring one decomposition against a `GroundTruth`: reconstruction, sparsity, its directions against the true
features, the truth's own scorer, and the loss with it spliced into the model."""

from __future__ import annotations

import equinox as eqx
import numpy as np

from toymi.decompose import metrics as M
from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.transcoder import Transcoder

EVAL_SEED = 123_456  # every method of a truth is scored on the same held-out sample
MMCS_BAR = 0.99  # a decomposition whose directions reach every true feature this closely recovered it (`success`)


def evaluate(decomposition, truth: GroundTruth, x: np.ndarray) -> dict[str, float]:
    """Every metric that applies to `decomposition` on `truth`, from the held-out sample `x` `[n, d]`."""
    codes = np.asarray(decomposition.encode(x), np.float64)
    x_hat = np.asarray(decomposition.decode(codes.astype(np.float32) if isinstance(decomposition, eqx.Module)
                                            else codes))
    out = _scores(decomposition, truth, codes, x, x_hat)
    if truth.splice is not None and isinstance(decomposition, eqx.Module):
        out |= _loss_recovered(truth.splice(decomposition))
    return out


def evaluate_transcoder(transcoder: Transcoder, truth: GroundTruth, x_in: np.ndarray, y: np.ndarray
                        ) -> dict[str, float]:
    """`evaluate` for a transcoder on held-out MLP inputs `x_in` and outputs `y`: codes from the input, variance
    explained of the output, decoder rows against the truth, and the loss with it in place of the MLP."""
    codes = np.asarray(transcoder.encode(x_in), np.float64)
    out = _scores(transcoder, truth, codes, y, np.asarray(transcoder.predict(x_in)))
    return out | _loss_recovered(truth.transcoder_splice(transcoder))


def _loss_recovered(report: dict) -> dict[str, float]:
    """The loss-recovered numbers of a `splice_report` (against zero- and mean-ablation)."""
    return {k: float(report[k]) for k in ("loss_recovered", "loss_recovered_mean") if k in report}


def _scores(decomposition, truth: GroundTruth, codes: np.ndarray, target: np.ndarray, prediction: np.ndarray
            ) -> dict[str, float]:
    """The metrics shared by every method: reconstruction, sparsity, and the directions against the truth."""
    directions = np.asarray(decomposition.directions, np.float64)
    out = {"variance_explained": M.variance_explained(target, prediction), "l0": M.l0(codes),
           "dead_fraction": M.dead_fraction(codes)}
    if truth.features is not None:
        features = np.asarray(truth.features, np.float64)
        alive = np.linalg.norm(features, axis=-1) > 0  # a model may drop features: their rows are zero
        features = features[alive]
        out |= {"mmcs": M.mmcs(features, directions), "mmcs_learned": M.mmcs(directions, features),
                "mcc": M.hungarian_mcc(directions, features), "frac_0.9": M.fraction_recovered(directions, features)}
        out["success"] = float(out["mmcs"] >= MMCS_BAR)
        if truth.feature_scales is not None:
            scales = np.asarray(truth.feature_scales, np.float64)[alive]
            components = directions * M.mean_active(codes)[:, None]
            out["ml2r"] = M.ml2r(components, features * scales[:, None])
    if truth.score is not None:
        out |= {k: float(v) for k, v in truth.score(decomposition).items()}
    return out
