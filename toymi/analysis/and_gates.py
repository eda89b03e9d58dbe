"""What a trained AND-gates model actually uses: per-gate ablation of each input, against the sparse circuit; for a
residual MLP, which neurons compute each gate (`neuron_interactions`, `neurons_per_gate`).

A model trained on AND gates may not implement each gate from its two inputs alone: it can learn dense circuits in
which other inputs matter too (Newgas 2025). `input_ablation_effects` measures it directly — set input j to 0 on
the examples where gate k is on and see how far gate k's output probability moves — and `circuit_agreement`
scores the result against the theoretical circuit (`AndGates.facts()["circuit"]`).

The ablations go through `AndGates.gate_logits`, so they work the same for every model kind the task trains: for
a transformer, setting input j to 0 means position j holds the "off" token `2*j` instead of `2*j + 1`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from toymi.tasks.and_gates import gate_patterns
from toymi.tasks.features import FeatureBatch


def input_ablation_effects(task, model, batch: FeatureBatch | None = None, *, logits: bool = False
                           ) -> Float[Array, "n_gates n_features"]:
    """Mean |Δ sigmoid(output k)| (with `logits`, |Δ output k|) when input j is set to 0, over the examples of
    `batch` where gate k is on.

    **Arguments:**

    - `task`: the `AndGates` task the model was trained on (its `gate_logits` runs the model).
    - `model`: a trained model of any kind the task trains (residual MLP or transformer).
    - `batch`: inputs and their gate targets; default the task's eval set (`task.eval_batches()["eval"]`).
    - `logits`: measure on the gate logits rather than the probabilities (which saturate: a logit moved from 9 to
      5 moves the probability by 0.007), as the attribution graphs attribute them.

    **Returns:** `[n_gates, n_features]` effects (in [0, 1] on probabilities); a gate never on in `batch` gets a row
    of zeros.
    """
    return _ablation_effects(task, model, task.eval_batches()["eval"] if batch is None else batch, logits)


@eqx.filter_jit
def _ablation_effects(task, model, batch: FeatureBatch, logits: bool) -> Float[Array, "n_gates n_features"]:
    read = (lambda v: v) if logits else jax.nn.sigmoid
    clean = read(task.gate_logits(model, batch.x))  # [batch, n_gates]

    def without(j):
        return jnp.abs(read(task.gate_logits(model, batch.x.at[:, j].set(0.0))) - clean)  # [batch, n_gates]

    change = jax.lax.map(without, jnp.arange(batch.x.shape[1]))  # [n_features, batch, n_gates]
    on = batch.y  # [batch, n_gates], 1.0 where the gate is on
    return jnp.einsum("jbk,bk->kj", change, on) / jnp.maximum(on.sum(0), 1.0)[:, None]


def circuit_agreement(effects: Float[Array, "n_gates n_features"], circuit: Bool[Array, "n_gates n_features"]
                      ) -> dict[str, Array]:
    """How much of the measured effect lies on the theoretical circuit's edges.

    **Arguments:**

    - `effects`: from `input_ablation_effects`.
    - `circuit`: the truth, True where an input feeds a gate.

    **Returns:** `{"on_circuit": scalar, "per_gate": [n_gates]}`, each the fraction of effect mass on true inputs
    (1.0: the model uses exactly the sparse circuit; a gate with no effect at all scores 0).
    """
    effects = jnp.asarray(effects)
    on = jnp.where(circuit, effects, 0.0)
    return {"on_circuit": on.sum() / jnp.maximum(effects.sum(), 1e-12),
            "per_gate": on.sum(1) / jnp.maximum(effects.sum(1), 1e-12)}


def neuron_interactions(task, model, layer: int = 0) -> Float[Array, "n_gates d_mlp"]:
    """Where a residual MLP computes each gate: every neuron's response that only the gate's pair makes,
    `h(a, b) − h(a) − h(b) + h(∅)` (the other inputs off; `h` the neuron's activation after its nonlinearity).
    Zero for a neuron that adds what the two inputs do alone, so a gate's AND lies in the neurons where it is not.

    **Raises:** `ValueError` for a model that is not a residual MLP, or a layer it does not have.
    """
    if getattr(model, "kind", None) != "residual_mlp":
        raise ValueError(f"neuron_interactions reads a residual MLP's neurons, got a {getattr(model, 'kind', model)!r}")
    if not 0 <= layer < model.config.n_layers:
        raise ValueError(f"layer {layer} is not one of the model's {model.config.n_layers} layers")
    pairs = jnp.asarray(task.pairs)
    inputs = jnp.concatenate([gate_patterns(pairs, task.n_features), jnp.zeros((1, task.n_features))])  # and none
    _, acts = jax.vmap(lambda x: model.forward(x, capture=frozenset({"mlp_post"})))(inputs)
    h = acts["mlp_post", layer]  # [pattern, d_mlp]
    n = len(pairs)
    alone = h[n:n + task.n_features]
    return h[:n] - alone[pairs[:, 0]] - alone[pairs[:, 1]] + h[-1]


def neurons_per_gate(interactions: Float[Array, "n_gates d_mlp"], rel: float = 0.1) -> Array:
    """`[n_gates]`: the neurons whose |interaction| for the gate is at least `rel` × the largest anywhere."""
    size = jnp.abs(jnp.asarray(interactions))
    return (size >= rel * size.max()).sum(axis=1)
