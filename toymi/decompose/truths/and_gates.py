"""The AND-gate truth: one direction per input and one per sparse gate at the residual MLP's neurons or output."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.splice import check_where
from toymi.decompose.truths.sampling import (
    SPLICE_SEED, activation_sampler, alive_rows, mlp_out_fields, model_splice, single_input_patterns,
)
from toymi.model.hooked import unit_rows
from toymi.model.residual_mlp import ResidualMLP
from toymi.tasks.and_gates import AndGates
from toymi.analysis.and_gates import input_ablation_effects


def and_gates_truth(model: ResidualMLP, task: AndGates, layer: int = 0, threshold: float = 0.9,
                    sparse_gate: float = 0.9, floor: float = 1e-4, site: str = "mlp_post") -> GroundTruth:
    """The AND-gate model's neurons (`mlp_post`) or its MLP's output (`mlp_out`), with one direction per input and
    one per sparse gate.

    - input j: `u_j = mlp_post(e_j) - mlp_post(0)`, what input j alone does to the neurons;
    - gate k = (a, b): `g_k = mlp_post(e_a + e_b) - mlp_post(e_a) - mlp_post(e_b) + mlp_post(0)`, the part of the
      neurons' response to both inputs that neither gives alone — the nonlinearity that computes the AND.
    - `site="mlp_out"`: the same differences of `mlp_out`, what the MLP writes; the truth then also carries the
      MLP's input→output stream (`io_sample`), so transcoders are scored on it.

    A gate counts only if the model computes it from its two inputs: `analysis.and_gates.input_ablation_effects`
    on the task's eval set must put at least `sparse_gate` of the gate's ablation effect on (a, b); a dense gate
    (Newgas 2025) has no single interaction direction and is left out (the name says how many remain). Directions
    shorter than `floor` are dropped.

    `score(decomposition)`, on its `directions` (with `threshold`, default 0.9, on |cos|):

    - `monosemantic_fraction`: latents whose best |cos| with one input or gate direction is ≥ threshold;
    - `gate_latent_fraction`: latents whose best match (≥ threshold) is a gate direction;
    - `inputs_found`, `gates_found`: input / gate directions with some latent at ≥ threshold.
    """
    if not isinstance(model, ResidualMLP) or not isinstance(task, AndGates):
        raise TypeError("and_gates_truth needs a ResidualMLP and its AndGates task (a transformer's gates are not "
                        "supported here)")
    if site not in ("mlp_post", "mlp_out"):
        raise ValueError(f"site must be 'mlp_post' or 'mlp_out', got {site!r}")
    check_where(model, site, layer)
    eye = jnp.eye(task.n_features)
    pairs = _sparse_pairs(model, task, sparse_gate)
    both = eye[pairs[:, 0]] + eye[pairs[:, 1]]
    singles = single_input_patterns(model, eye, layer, site)
    inputs = singles
    gates = single_input_patterns(model, both, layer, site) - singles[pairs[:, 0]] - singles[pairs[:, 1]]
    in_keep = np.asarray(jnp.linalg.norm(inputs, axis=-1) > floor)
    gate_keep = np.asarray(jnp.linalg.norm(gates, axis=-1) > floor)
    truth_in, truth_gate = unit_rows(inputs[in_keep]), unit_rows(gates[gate_keep])
    features = jnp.concatenate([truth_in, truth_gate])
    scales = jnp.concatenate([jnp.linalg.norm(inputs[in_keep], axis=-1), jnp.linalg.norm(gates[gate_keep], axis=-1)])
    n_in = truth_in.shape[0]

    def score(decomposition) -> dict[str, float]:
        latents = alive_rows(decomposition.directions)
        cos = jnp.abs(unit_rows(latents) @ features.T)  # [latent, truth]
        best = cos.max(1)
        mono = best >= threshold
        return {"monosemantic_fraction": float(mono.mean()),
                "gate_latent_fraction": float((mono & (cos.argmax(1) >= n_in)).mean()),
                "inputs_found": float((cos[:, :n_in].max(0) >= threshold).mean()) if n_in else float("nan"),
                "gates_found": (float((cos[:, n_in:].max(0) >= threshold).mean()) if features.shape[0] > n_in
                                else float("nan"))}

    batch = task.sample(jax.random.PRNGKey(SPLICE_SEED), 4096)
    where = "" if site == "mlp_post" else f" {site}"
    return GroundTruth(
        name=f"and gates{where} ({int(gate_keep.sum())}/{task.n_gates} sparse gates)",
        sample=activation_sampler(model, task, site, layer), d=int(features.shape[1]), features=features,
        score=score, splice=model_splice(model, task, site, layer, batch), feature_scales=scales,
        neurons=model.neuron_basis(site, layer), **mlp_out_fields(model, task, site, layer, batch))


def _sparse_pairs(model, task: AndGates, sparse_gate: float) -> np.ndarray:
    """The input pairs of the gates that put at least `sparse_gate` of their input-ablation effect on their own two
    inputs (`analysis.and_gates.input_ablation_effects` on the task's eval set), `[n_sparse, 2]`."""
    pairs = np.asarray(task.pairs)
    effects = np.asarray(input_ablation_effects(task, model))  # [n_gates, n_features]
    on_pair = effects[np.arange(len(pairs)), pairs[:, 0]] + effects[np.arange(len(pairs)), pairs[:, 1]]
    return pairs[on_pair >= sparse_gate * np.maximum(effects.sum(1), 1e-12)]
