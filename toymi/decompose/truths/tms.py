"""The TMS truth: a decomposition of TMS's hidden activations should find the columns of `W`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.truths.sampling import SPLICE_SEED, activation_sampler, model_splice
from toymi.model.hooked import unit_rows
from toymi.model.tms import TMS
from toymi.tasks.tms import ToyModelsOfSuperposition


def tms_truth(model: TMS, task: ToyModelsOfSuperposition, n_splice: int = 10_000) -> GroundTruth:
    """TMS n→m: the hidden activations `h = W x`; the true features are W's columns, normalised.

    Column `W[:, i]` is where the model writes feature i, so a decomposition of `h` should find exactly these
    directions (SPD: MMCS 1.000 on 5→2 and 40→10 at feature probability 0.05; APD: 0.996–0.998 — stored: SPD's).
    `feature_scales` are `0.5 ‖W_i‖` (an active feature is U[0, 1), mean 0.5). A column of norm 0 (a feature the
    model dropped) stays a zero row. Splicing replaces `hidden` (for the hidden-identity variant, `hidden` too: the
    first bottleneck).
    """
    if not isinstance(model, TMS) or not isinstance(task, ToyModelsOfSuperposition):
        raise TypeError(f"tms_truth needs a TMS model and its ToyModelsOfSuperposition task, got "
                        f"{type(model).__name__} and {type(task).__name__}")
    n, m = model.config.n_features, model.config.d_hidden
    batch = task.sample(jax.random.PRNGKey(SPLICE_SEED), n_splice)
    return GroundTruth(
        name=f"tms {n}→{m}" + (" + identity" if model.config.hidden_identity else ""),
        sample=activation_sampler(model, task, "hidden"), d=m,
        features=unit_rows(model.W.T), published={"mmcs": 1.000},  # SPD (Bushnaq et al. 2025); APD: 0.996–0.998
        splice=model_splice(model, task, "hidden", None, batch),
        feature_scales=0.5 * jnp.linalg.norm(model.W, axis=0))
