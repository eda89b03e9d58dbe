"""The compressed-computation truth: one direction per (feature, sign) at the residual MLP's neurons or output, or
the embedding's rows at its input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.splice import check_where
from toymi.decompose.truths.sampling import (
    SPLICE_SEED, activation_sampler, mlp_out_fields, model_splice, single_input_patterns,
)
from toymi.model.hooked import unit_rows
from toymi.model.residual_mlp import ResidualMLP
from toymi.tasks.compressed_computation import CompressedComputation


def compressed_computation_truth(model: ResidualMLP, task: CompressedComputation, layer: int = 0,
                                 site: str = "mlp_post", n_splice: int = 10_000, floor: float = 1e-6) -> GroundTruth:
    """Compressed computation: the MLP's neurons (`mlp_post`), its output (`mlp_out`) or its input (`resid_pre`),
    with per-feature truths.

    - `site="mlp_post"`: feature i at value ±1 alone makes the pattern `mlp_post(±e_i) - mlp_post(0)`; without
      biases in one layer that is `ReLU(±W_E[i] · W_in)`, the positive (negative) part of feature i's read-in
      weights (`neuron_feature_weights`). A feature's activations lie along it, scaled by |x_i| (mean 0.5), so
      each (feature, sign) with a pattern longer than `floor` is one true direction (2 per feature at most).
    - `site="mlp_out"`: the same patterns as the MLP writes them (`mlp_out(±e_i) - mlp_out(0)`). This truth also
      carries the MLP's input→output stream (`io_sample`), so transcoders are scored on it: a latent per (feature,
      sign) is the circuit.
    - `site="resid_pre"`: the MLP's input, where feature i is `W_E[i]` (exact: the embedding writes it there).

    `neurons` is the model's neuron basis in that space.
    """
    if not isinstance(model, ResidualMLP) or not isinstance(task, CompressedComputation):
        raise TypeError("compressed_computation_truth needs a ResidualMLP and its CompressedComputation task")
    if site not in ("mlp_post", "mlp_out", "resid_pre"):
        raise ValueError(f"site must be 'mlp_post', 'mlp_out' or 'resid_pre', got {site!r}")
    check_where(model, site, layer)
    if site == "resid_pre":
        if layer != 0:
            raise ValueError("resid_pre after layer 0 also carries earlier MLPs' outputs; use layer 0")
        features, scales = model.W_E, jnp.full(model.config.n_features, 0.5)
    else:
        eye = jnp.eye(model.config.n_features)
        patterns = single_input_patterns(model, jnp.concatenate([eye, -eye]), layer, site)
        norms = jnp.linalg.norm(patterns, axis=-1)
        keep = np.asarray(norms > floor)
        features, scales = unit_rows(patterns[keep]), 0.5 * norms[keep]
    batch = task.sample(jax.random.PRNGKey(SPLICE_SEED), n_splice)
    return GroundTruth(
        name=f"compressed computation {site}" + (f" (layer {layer} of {model.config.n_layers})"
                                                 if model.config.n_layers > 1 else ""),
        sample=activation_sampler(model, task, site, layer),
        d=int(features.shape[1]), features=features, splice=model_splice(model, task, site, layer, batch),
        feature_scales=scales, neurons=model.neuron_basis(site, layer),
        **mlp_out_fields(model, task, site, layer, batch))
