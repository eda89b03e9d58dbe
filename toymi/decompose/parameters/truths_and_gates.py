"""AND gates (the residual MLP of `toymi.tasks.and_gates`) as a truth for SPD: does each gate get `W_in`
subcomponents of its own, and do they read the gate's two inputs?

The MLP computes gate k = (a, b) as a nonlinearity of inputs a and b. A decomposition that found that mechanism has
`W_in` subcomponents that matter (causal importance ≥ `threshold`) when a and b are both on, and on no other input
pattern: not on another gate's pair, not on one input alone (alone, a ReLU that computes `relu(x_a + x_b - 1)` is off
whether its weights are kept or not). Those are the gate's *exclusive* subcomponents. What one reads is its `V_c`
(the residual direction `V_cᵀ a` measures), seen through the fixed embedding: `(W_E V_c)_j²` is how much input j it
reads, and the share on (a, b) says whether it reads the gate's own inputs.

`score_and_gates` reports `gates_found` (gates with an exclusive `W_in` subcomponent; `success` when every gate has
one), `reads_own_inputs` (over the gates found, the mean share of the best exclusive subcomponent's read on the
gate's two inputs), `inputs_found` (inputs with an exclusive subcomponent among the single-input patterns), and
`w_in_alive` / `w_out_alive` (subcomponents important on some pattern). `gate_scores` is the same on plain arrays,
for hand-made decompositions.

`W_in` acts linearly on the inputs, so the shortest description of it on sparse inputs is one subcomponent per
input, important on exactly the patterns that hold that input; the gates' nonlinearity is in the neurons, so a
subcomponent that only one gate's pair needs is rather to be expected in `W_out`, which reads the neurons after
the ReLU. Two more scores say which of these a decomposition found: `inputs_own_w_in` (the fraction of inputs with a
`W_in` subcomponent important on exactly the patterns holding that input: `per_input`) and `w_out_gates_found`
(gates with an exclusive `W_out` subcomponent: `own_gates`).

The AND-gate transformer (`tasks/and_gates_transformer_quick.toml`: attention gathers the inputs at the readout
position, the MLP computes the gates there) gets the same test at the readout position (`score_and_gates_transformer`):
causal importances of the MLP's `W_in` there, on each pair and single input written as tokens (`encode_tokens`), and
what a subcomponent reads of input j measured through the model, `V_c · (m_j − m_0)`, where `m_j` is the MLP's input
at the readout with input j alone on and `m_0` with every input off (for the residual MLP that difference is `W_E`'s
row j, the read above).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.decompose.parameters.evaluate import causal_importances
from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.scoring import alive_by_importance, exclusive
from toymi.decompose.parameters.targets import model_targets
from toymi.model.residual_mlp import ResidualMLP
from toymi.tasks.and_gates import AndGates, encode_tokens, gate_patterns


def gate_scores(ci_pairs: Float[Array, "gate C"], ci_singles: Float[Array, "feature C"],
                reads: Float[Array, "C feature"], pairs: Int[Array, "gate 2"], threshold: float = 0.5
                ) -> dict[str, float]:
    """The scores of the module docstring from causal importances on each gate's pair input (`ci_pairs`) and on each
    single input (`ci_singles`), and what each subcomponent reads of each input (`reads`, e.g. `W_E V_c`)."""
    ci_pairs, ci_singles, reads, pairs = map(np.asarray, (ci_pairs, ci_singles, reads, pairs))
    n_gates, n_features = len(pairs), ci_singles.shape[0]
    if ci_pairs.shape[0] != n_gates or reads.shape != (ci_pairs.shape[1], n_features) or pairs.shape != (n_gates, 2):
        raise ValueError(f"shapes do not fit: ci_pairs {ci_pairs.shape}, ci_singles {ci_singles.shape}, reads "
                         f"{reads.shape}, pairs {pairs.shape} (want [gate, C], [feature, C], [C, feature], [gate, 2])")
    own = exclusive(np.concatenate([ci_pairs, ci_singles]), threshold)
    gate_own, input_own = own[:n_gates], own[n_gates:]
    found = gate_own.any(axis=1)
    energy = np.asarray(reads, np.float64) ** 2
    share = energy[:, pairs].sum(-1).T / np.maximum(energy.sum(1), 1e-30)  # [gate, C]: read on the gate's inputs
    best = np.where(gate_own, share, -np.inf).max(axis=1)
    return {"gates_found": float(found.mean()),
            "reads_own_inputs": float(best[found].mean()) if found.any() else float("nan"),
            "inputs_found": float(input_own.any(axis=1).mean()),
            "success": float(found.all())}  # the bar: every gate found


def own_gates(ci_pairs: Float[Array, "gate C"], ci_singles: Float[Array, "feature C"], threshold: float = 0.5
              ) -> float:
    """The fraction of gates with a subcomponent important on their pair input and on no other pattern."""
    ci_pairs = np.asarray(ci_pairs)
    return float(exclusive(np.concatenate([ci_pairs, np.asarray(ci_singles)]), threshold)[:len(ci_pairs)]
                 .any(axis=1).mean())


def per_input(ci_pairs: Float[Array, "gate C"], ci_singles: Float[Array, "feature C"], pairs: Int[Array, "gate 2"],
              threshold: float = 0.5) -> float:
    """The fraction of inputs j with a subcomponent important (≥ `threshold`) on exactly the patterns that hold j:
    j alone and every pair with j in it, and on no other."""
    ci_pairs, ci_singles, pairs = map(np.asarray, (ci_pairs, ci_singles, pairs))
    n_features = ci_singles.shape[0]
    if pairs.shape != (ci_pairs.shape[0], 2):
        raise ValueError(f"pairs must be [gate, 2] for {ci_pairs.shape[0]} gates, got {pairs.shape}")
    high = np.concatenate([ci_pairs, ci_singles]) >= threshold  # [pattern, C]
    holds = np.asarray(gate_patterns(pairs, n_features)) > 0  # [pattern, feature]: pattern holds input j
    matches = (high[:, :, None] == holds[:, None, :]).all(axis=0)  # [C, feature]
    return float(matches.any(axis=0).mean())


def input_reads(model: ResidualMLP, w_in: Subcomponents) -> Float[Array, "C feature"]:
    """What each `W_in` subcomponent reads of each input: `(W_E V_c)_j`, input j's embedding against its `V_c`."""
    return np.asarray(model.W_E @ w_in.V).T


def score_and_gates(model: ResidualMLP, params: SPDParams, pairs, threshold: float = 0.5) -> dict[str, float]:
    """`gate_scores` for layer 0's `W_in` of a 1-layer AND-gate residual MLP, plus the alive subcomponent counts.
    Causal importances are read on each gate's pair input (both inputs at 1), then on each single input."""
    if model.config.n_layers != 1:
        raise ValueError(f"the AND-gate truth is stated for 1-layer models, got {model.config.n_layers} layers")
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.min() < 0 or pairs.max() >= model.config.n_features:
        raise ValueError(f"pairs must be [gate, 2] input indices below {model.config.n_features}, got {pairs.shape} "
                         f"in [{pairs.min()}, {pairs.max()}]")
    targets = model_targets(model)
    patterns = gate_patterns(pairs, model.config.n_features)
    ci = {t.name: np.asarray(g) for t, g in zip(targets, causal_importances(params, model, targets, patterns))}
    w_in = params.components[[t.name for t in targets].index("W_in.0")]
    n = len(pairs)
    out = gate_scores(ci["W_in.0"][:n], ci["W_in.0"][n:], input_reads(model, w_in), pairs, threshold)
    out["inputs_own_w_in"] = per_input(ci["W_in.0"][:n], ci["W_in.0"][n:], pairs, threshold)
    out["w_out_gates_found"] = own_gates(ci["W_out.0"][:n], ci["W_out.0"][n:], threshold)
    out["w_in_alive"] = float(alive_by_importance(ci["W_in.0"], threshold))
    out["w_out_alive"] = float(alive_by_importance(ci["W_out.0"], threshold))
    return out


def score_and_gates_transformer(model, task: AndGates, params: SPDParams, threshold: float = 0.5
                                ) -> dict[str, float]:
    """`gate_scores` for a 1-layer AND-gate transformer's MLP `W_in.0` at the readout position (module docstring),
    plus the alive counts of every decomposed matrix there (`<name>_alive`)."""
    if model.kind != "transformer" or model.config.n_layers != 1 or model.blocks.mlp is None:
        raise ValueError("score_and_gates_transformer needs a 1-layer AND-gate transformer with an MLP")
    pairs, n = np.asarray(task.pairs), task.n_features
    patterns = jnp.concatenate([gate_patterns(pairs, n), jnp.zeros((1, n))])  # and every input off
    tokens = encode_tokens(patterns)  # [gate + feature + 1, pos]; the readout is the last position
    targets = model_targets(model)
    names = [t.name for t in targets]
    ci = {t.name: np.asarray(g)[:, -1] for t, g in zip(targets, causal_importances(params, model, targets, tokens))}
    _, acts = model.run(tokens, capture=[model.mlp_input_site()])
    mlp_in = np.asarray(model.mlp_input(acts, 0))[:, -1]  # [pattern, d_model]
    change = mlp_in[len(pairs):len(pairs) + n] - mlp_in[-1]  # [feature, d_model]: what input j alone adds
    reads = (change @ np.asarray(params.components[names.index("W_in.0")].V)).T  # [C, feature]
    g, g_out, m = ci["W_in.0"], ci["W_out.0"], len(pairs)
    out = gate_scores(g[:m], g[m:m + n], reads, pairs, threshold)
    out |= {"inputs_own_w_in": per_input(g[:m], g[m:m + n], pairs, threshold),
            "w_out_gates_found": own_gates(g_out[:m], g_out[m:m + n], threshold)}
    return out | {f"{name}_alive": float(alive_by_importance(ci[name][:-1], threshold)) for name in names}
