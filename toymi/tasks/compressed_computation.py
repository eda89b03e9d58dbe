"""Compressed computation (Braun et al. 2025, APD §3.3; Bushnaq et al. 2025, SPD): compute ReLU of 100 sparse
features with 50 neurons, on a residual MLP (`toymi.model.residual_mlp`).

Setup, following SPD's `resid_mlp` training code (`label_type="act_plus_resid"`, `loss_type="readoff"`,
`data_generation_type="at_least_zero_active"`, trivial label coefficients):

- input: each of `n_features` features independently active with probability `feature_probability`, its value
  uniform in [-1, 1); inactive features are exactly 0 (any number may be active at once);
- target: `y = x + ReLU(x)` per feature. The fixed embedding/unembedding pass `x` through the residual stream (up to
  the interference `x (W_E W_Eᵀ - I)`), so the MLP has to supply ReLU(x) for every feature;
- loss: mean squared error on `y` (the read-out), averaged over batch and features — not on the ReLU part alone,
  so the embedding's interference counts, as in APD/SPD;
- fresh batches of `batch_size` are drawn on device every step; the eval set is fixed, drawn from `eval_seed`.

`evaluate` logs `loss` next to `naive_loss`: the same batch through the naive monosemantic solution
(`naive_model`): one neuron per feature for the first `d_mlp` features, the others ignored. A model that beats it
computes more ReLUs than it has neurons.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.tasks.base import Task
from toymi.tasks.features import FeatureBatch, sparse_uniform
from toymi.tasks.render import features_from_string, features_to_string, render_features
from toymi.validate import integer, probability, problems, require

_CHECKS = {"n_features": integer(1), "feature_probability": probability, "batch_size": integer(1),
           "n_eval": integer(1), "eval_seed": integer(0)}


def relu_plus_identity(x: Float[Array, "*batch n_features"]) -> Float[Array, "*batch n_features"]:
    """The target `x + ReLU(x)`."""
    return x + jax.nn.relu(x)


@eqx.filter_jit  # one compiled program for the eval set a task draws at construction (eagerly, several one-op ones)
def examples(key: PRNGKeyArray, n: int, n_features: int, p: float) -> FeatureBatch:
    """`n` sparse inputs uniform in [-1, 1) and their targets `x + ReLU(x)`."""
    x = sparse_uniform(key, n, n_features, p)
    return FeatureBatch(x, relu_plus_identity(x))


class CompressedComputation(Task):
    """`y = x + ReLU(x)` for sparse features uniform in [-1, 1).

    **Arguments:**

    - `n_features`: input features (APD/SPD: 100).
    - `feature_probability`: probability each feature is active (APD/SPD: 0.01).
    - `batch_size`: examples per training step (SPD: 2048).
    - `n_eval`: size of the fixed eval set.
    - `eval_seed`: seed of the eval set (training batches come from the train seed).
    """

    model_kinds = ("residual_mlp",)
    predicts_next_token = False  # the model outputs feature values
    sweep_summary = ("eval_loss", None)  # an MSE whose scale the settings change: a sweep reports its final value

    n_features: int = eqx.field(static=True)
    feature_probability: float = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    n_eval: int = eqx.field(static=True)
    eval_seed: int = eqx.field(static=True)
    eval_set: FeatureBatch

    def __init__(self, n_features: int = 100, feature_probability: float = 0.01, batch_size: int = 2048,
                 n_eval: int = 10_000, eval_seed: int = 0):
        require("compressed_computation task", problems(
            {"n_features": n_features, "feature_probability": feature_probability, "batch_size": batch_size,
             "n_eval": n_eval, "eval_seed": eval_seed}, _CHECKS))
        self.n_features, self.feature_probability = n_features, float(feature_probability)
        self.batch_size, self.n_eval, self.eval_seed = batch_size, n_eval, eval_seed
        self.eval_set = self.sample(jax.random.PRNGKey(eval_seed), n_eval)

    def sample(self, key: PRNGKeyArray, n: int) -> FeatureBatch:
        """`n` fresh examples and their targets."""
        return examples(key, n, self.n_features, self.feature_probability)

    def train_batch(self, key: PRNGKeyArray) -> FeatureBatch:
        return self.sample(key, self.batch_size)

    def eval_batches(self) -> dict[str, FeatureBatch]:
        return {"eval": self.eval_set}

    def model_dims(self) -> dict[str, int]:
        return {"n_features": self.n_features}

    def output_comparison(self, kind: str) -> tuple[str, tuple[int, ...] | None]:
        """MSE between the outputs, as the loss (and the SPD paper)."""
        del kind
        return "mse", None

    def loss(self, model, batch: FeatureBatch) -> Float[Array, ""]:
        return jnp.mean((model(batch.x) - batch.y) ** 2)

    def evaluate(self, model, batch: FeatureBatch) -> dict[str, Array]:
        return {"loss": self.loss(model, batch), "naive_loss": self.loss(naive_model(model), batch)}

    def render_tokens(self, x) -> list[str]:
        """One label per feature of one input `[n_features]`: `f3=0.71` (`f0=0` when off)."""
        return render_features(x, self.n_features, 'compressed_computation')

    def to_string(self, x) -> str:
        """The active features of one input, `f3=0.71 f17=0.2`."""
        return features_to_string(x, self.n_features, 'compressed_computation')

    def from_string(self, text: str) -> Array:
        """The float32 `[n_features]` input `to_string` wrote (unnamed features 0)."""
        return features_from_string(text, self.n_features, 'compressed_computation')

    def facts(self) -> dict:
        """What is known before training: the target, its circuit (output i from input i), and the MSE each feature
        costs when its ReLU is ignored (`p · E[ReLU(u)²] = p / 6` for u ~ U[-1, 1)). Which neurons serve which
        feature in a trained model is measured by `toymi.analysis.compressed_computation`."""
        return {"target": "x + relu(x)", "feature_probability": self.feature_probability,
                "mse_per_ignored_feature": self.feature_probability / 6,
                "circuit": np.eye(self.n_features, dtype=bool)}  # [output, input]: output i reads feature i alone


def naive_model(model):
    """The naive monosemantic solution in `model`'s shape: one neuron per feature, for the first
    `min(n_layers · d_mlp, n_features)` features (layer l's neuron n computes ReLU(x_{l·d_mlp + n})), reading and
    writing through the pseudo-inverses of `W_E` and `W_U`; other features get no ReLU.

    With one layer its ReLUs are exact, and its loss is the residual stream's interference plus `p / 6` per ignored
    feature (`facts`). A later layer also reads what earlier layers wrote, `pinv(W_U) pinv(W_E)` off its diagonal:
    zero for an orthonormal embedding (the clean variant, `W_U = W_Eᵀ`), and interference-sized for a random one.
    All biases are zero.

    **Arguments:**

    - `model`: a `ResidualMLP` (its embedding, unembedding and sizes are used; its MLP weights are replaced).

    **Returns:** a `ResidualMLP` of the same config.
    """
    c = model.config
    k = min(c.n_layers * c.d_mlp, c.n_features)
    read = jnp.linalg.pinv(model.W_E)[:, :k]  # [d_model, k]: r @ read = x[:k] exactly
    write = jnp.linalg.pinv(model.W_U)[:k, :]  # [k, d_model]: write @ W_U = identity on the first k outputs
    W_in, W_out = jnp.zeros_like(model.W_in), jnp.zeros_like(model.W_out)
    for layer, start in enumerate(range(0, k, c.d_mlp)):
        n = min(c.d_mlp, k - start)
        W_in = W_in.at[layer, :, :n].set(read[:, start:start + n])
        W_out = W_out.at[layer, :n, :].set(write[start:start + n])
    zeros = lambda b: None if b is None else jnp.zeros_like(b)  # noqa: E731
    return eqx.tree_at(lambda m: (m.W_in, m.W_out, m.b_in, m.b_out), model,
                       (W_in, W_out, zeros(model.b_in), zeros(model.b_out)), is_leaf=lambda v: v is None)
