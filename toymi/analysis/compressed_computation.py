"""Which neurons serve which feature in a residual MLP, as APD/SPD measure it.

- `neuron_feature_weights`: the direct weights between features and neurons — feature i's read-in by neuron n,
  `W_E[i] · W_in[l, :, n]`, and neuron n's write-out to output i, `W_out[l, n] · W_U[:, i]`.
- `neuron_ablation_effects`: on inputs with a single active feature, how much zero-ablating each neuron changes
  that feature's output (through the model's `patch` intervention, so it is exact at any depth);
  `feature_ablation_effects` is one feature's row.
- `neurons_used`: the per-feature map of neurons that carry a sizeable share of it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from toymi.model.interventions import patch


def neuron_feature_weights(model) -> dict[str, Float[Array, "..."]]:
    """Direct feature↔neuron weights of a `ResidualMLP`.

    **Arguments:**

    - `model`: a `ResidualMLP`.

    **Returns:** `{"input": [layer, feature, d_mlp], "output": [layer, d_mlp, output]}`: `input[l, i, n] =
    W_E[i] · W_in[l, :, n]` and `output[l, n, i] = W_out[l, n] · W_U[:, i]`. For layers after the first these
    are the direct paths only (earlier layers also write into what they read).
    """
    return {"input": jnp.einsum("fd,ldm->lfm", model.W_E, model.W_in),
            "output": jnp.einsum("lmd,do->lmo", model.W_out, model.W_U)}


def feature_ablation_effects(model, i: Int[Array, ""], value: float = 1.0) -> Float[Array, "layer d_mlp"]:
    """Feature i's row of `neuron_ablation_effects`: |change in output i| when one neuron is zero-ablated, on the
    input `value · e_i`. Traceable in `i` and in the model's weights, so it vmaps over features and over models
    (an SPD decomposition's per-feature masked models, `truths_compressed.neuron_agreement`)."""
    c = model.config
    x = value * jax.nn.one_hot(i, c.n_features)
    clean, acts = model.run(x, capture=["mlp_post"])
    post = acts["mlp_post"]  # [layer, d_mlp]

    def ablate(layer, neuron):
        ablated = post[layer].at[neuron].set(0.0)
        out, _ = model.run(x, interventions=[patch("mlp_post", ablated, layer=layer)])
        return jnp.abs(out[i] - clean[i])

    layers, neurons = jnp.meshgrid(jnp.arange(c.n_layers), jnp.arange(c.d_mlp), indexing="ij")
    return jax.vmap(jax.vmap(ablate))(layers, neurons)


@jax.jit
def neuron_ablation_effects(model, value: float = 1.0) -> Float[Array, "feature layer d_mlp"]:
    """|change in output i| when one neuron is zero-ablated, on the input `value · e_i` (feature i alone).

    **Arguments:**

    - `model`: a `ResidualMLP` with as many outputs as features.
    - `value`: the active feature's value (positive: its ReLU is on).

    **Returns:** `[feature, layer, d_mlp]` effects (`feature_ablation_effects` per feature); all features, layers
    and neurons in one vmapped call.
    """
    return jax.vmap(lambda i: feature_ablation_effects(model, i, value))(jnp.arange(model.config.n_features))


def neurons_used(effects: Float[Array, "feature layer d_mlp"], threshold: float = 0.1, floor: float = 1e-3
                 ) -> Bool[Array, "feature layer d_mlp"]:
    """The neurons that carry at least `threshold` times the feature's largest single-neuron effect, and at least
    `floor` in absolute terms (so float noise on a feature no neuron serves does not count).

    **Arguments:**

    - `effects`: from `neuron_ablation_effects`.
    - `threshold`: the fraction of the feature's largest effect a neuron needs.
    - `floor`: the smallest effect that counts at all (the target ReLU(value) is 1 at the default value).

    **Returns:** a boolean map `[feature, layer, d_mlp]`.
    """
    largest = effects.max(axis=(1, 2), keepdims=True)
    return effects >= jnp.maximum(threshold * largest, floor)
