"""AND gates: from sparse boolean features, output the AND of chosen feature pairs.

Each of `n_features` inputs is 1 with probability `feature_probability`, else 0, independently; gate k outputs
`x[a_k] AND x[b_k]`. The gates are every pair (`gates = "all"`), a random subset of that many pairs
(`gates = 20`, drawn with `gate_seed`), or a circuit given in the spec (`gates = [[0, 1], [2, 3]]`).

Two model kinds train on it (`[model] kind`), both ending in one logit per gate:

- `"residual_mlp"` (the default; `toymi.model.residual_mlp`): reads the `[n_features]` vector directly, with a
  learned unembedding to one logit per gate. An exact solution needs a nonlinearity per gate (e.g.
  ReLU(x_a + x_b - 1), so `in_bias = true` helps).
- `"transformer"`: reads the inputs as a sequence of `n_features + 1` tokens (`encode_tokens`): position
  j < n_features holds token `2*j + x_j` (feature j off or on, so each position has its own pair of tokens), and
  the last position holds the readout token `2*n_features`. Its logits at that last position are the gate logits:
  `d_vocab = 2*n_features + 1`, `d_vocab_out = n_gates`, `n_ctx = n_features + 1` (`model_dims_for`).

`gate_logits(model, x)` hides the difference: everything downstream (the loss, `evaluate`, the ablations of
`toymi.analysis.and_gates`) sees `[batch, n_gates]` logits of `[batch, n_features]` inputs. The loss is
binary cross-entropy on the gate logits, averaged over gates and examples. Because most gates are off for sparse
inputs (all-off scores accuracy 1 - p²), `evaluate` also reports `on_accuracy`, the accuracy on gates that are on.

`facts()` is the theoretical sparse circuit; `toymi.analysis.and_gates` measures what a trained
model actually uses, which may be dense (Newgas 2025).
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from toymi.errors import ConfigError
from toymi.tasks.base import Task
from toymi.tasks.features import FeatureBatch, sparse_boolean
from toymi.tasks.render import features_from_string, features_to_string, one_sequence, render_features
from toymi.validate import integer, probability, problems, require

_CHECKS = {"batch_size": integer(1), "n_eval": integer(1), "feature_probability": probability,
           "n_features": integer(2, says="an integer >= 2 (a gate needs two inputs)"), "gate_seed": integer(0),
           "eval_seed": integer(0)}


READOUT_TEXT = "<read>"


def gate_pairs(n_features: int, gates, gate_seed: int = 0) -> tuple[tuple[int, int], ...]:
    """The gates' input pairs from the `gates` setting.

    **Arguments:**

    - `n_features`: number of inputs.
    - `gates`: `"all"`, a number of random pairs, or a list of `[a, b]` pairs.
    - `gate_seed`: seed of the random subset (NumPy `default_rng`).

    **Returns:** the pairs, each `(a, b)`; for `"all"` and random subsets sorted with `a < b`.

    **Raises:** `ConfigError` naming every problem with a bad setting.
    """
    every = list(itertools.combinations(range(n_features), 2))
    if gates == "all":
        return tuple(every)
    if isinstance(gates, int) and not isinstance(gates, bool):
        if not 0 < gates <= len(every):
            raise ConfigError(f"gates={gates}: a random subset needs between 1 and {len(every)} pairs "
                              f"(all pairs of {n_features} features)")
        chosen = np.random.default_rng(gate_seed).choice(len(every), size=gates, replace=False)
        return tuple(every[i] for i in sorted(chosen))
    if not isinstance(gates, (list, tuple)) or not gates:
        raise ConfigError(f'gates must be "all", a number of random pairs, or a list of [a, b] pairs; got {gates!r}')
    found, seen = [], set()
    for pair in gates:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)):
            found.append(f"{pair!r} is not a pair of feature indices")
        elif not all(0 <= i < n_features for i in pair):
            found.append(f"{list(pair)} has an index outside [0, {n_features})")
        elif pair[0] == pair[1]:
            found.append(f"{list(pair)} ANDs a feature with itself")
        elif frozenset(pair) in seen:
            found.append(f"{list(pair)} appears twice")
        else:
            seen.add(frozenset(pair))
    require("gates", found)
    return tuple((int(a), int(b)) for a, b in gates)


def circuit_matrix(pairs, n_features: int) -> Bool[np.ndarray, "n_gates n_features"]:
    """`[n_gates, n_features]`: True where the input feeds the gate."""
    truth = np.zeros((len(pairs), n_features), bool)
    for k, (a, b) in enumerate(pairs):
        truth[k, [a, b]] = True
    return truth


def gate_patterns(pairs: Int[Array, "gate 2"], n_features: int) -> Float[Array, "gate+feature n_features"]:
    """The probe inputs of a per-gate measurement: each gate's pair on (the rest off), then each input alone."""
    eye = jnp.eye(n_features)
    return jnp.concatenate([eye[pairs[:, 0]] + eye[pairs[:, 1]], eye])


def encode_tokens(x: Float[Array, "*batch n_features"]) -> Int[Array, "*batch n_features+1"]:
    """The transformer's input for boolean features `x`: token `2*j + x_j` at position j, then the readout token
    `2*n_features` (e.g. `x = [1, 0, 1]` gives `[1, 2, 5, 6]`). Pure jnp with static shapes (jit-able)."""
    n = x.shape[-1]
    features = 2 * jnp.arange(n, dtype=jnp.int32) + (x > 0.5).astype(jnp.int32)
    readout = jnp.full((*x.shape[:-1], 1), 2 * n, jnp.int32)
    return jnp.concatenate([jnp.broadcast_to(features, x.shape), readout], axis=-1)


def gate_loss(logits: Float[Array, "batch n_gates"], y: Float[Array, "batch n_gates"]) -> Float[Array, ""]:
    """Binary cross-entropy of the gate logits, averaged over gates and examples."""
    return optax.sigmoid_binary_cross_entropy(logits, y).mean()


def gate_metrics(logits: Float[Array, "batch n_gates"], y: Float[Array, "batch n_gates"]) -> dict[str, Array]:
    """`loss`, `accuracy` (over every gate of every example), `on_accuracy` (over the gates that are on) and
    `exact_match` (examples with every gate right)."""
    correct = ((logits > 0) == (y > 0.5)).astype(jnp.float32)
    return {
        "loss": gate_loss(logits, y),
        "accuracy": correct.mean(),
        "on_accuracy": (correct * y).sum() / jnp.maximum(y.sum(), 1.0),  # recall of the gates that are on
        "exact_match": correct.min(axis=1).mean(),  # every gate right
    }


def gate_targets(x: Float[Array, "batch n_features"], gate_inputs: Int[Array, "n_gates 2"]
                 ) -> Float[Array, "batch n_gates"]:
    """Each gate's AND of its two inputs (1.0 or 0.0)."""
    return x[:, gate_inputs[:, 0]] * x[:, gate_inputs[:, 1]]


@eqx.filter_jit  # one compiled program for the eval set a task draws at construction (eagerly, several one-op ones)
def gate_examples(key: PRNGKeyArray, n: int, n_features: int, p: float, gate_inputs: Int[Array, "n_gates 2"]
                  ) -> FeatureBatch:
    """`n` sparse boolean inputs and their gates' targets."""
    x = sparse_boolean(key, n, n_features, p)
    return FeatureBatch(x, gate_targets(x, gate_inputs))


class AndGates(Task):
    """ANDs of pairs of sparse boolean features.

    **Arguments:**

    - `n_features`: boolean inputs.
    - `feature_probability`: probability each input is 1.
    - `gates`: `"all"`, a number of random pairs, or a list of `[a, b]` pairs (see `gate_pairs`).
    - `gate_seed`: seed of a random subset of gates.
    - `batch_size`: examples per training step (fresh on device every step).
    - `n_eval`: size of the fixed eval set, drawn from `eval_seed`.
    """

    model_kinds = ("residual_mlp", "transformer")
    known_circuit = "and_gates"
    predicts_next_token = False  # independent gate logits (sigmoid), not a next token, with either kind

    n_features: int = eqx.field(static=True)
    feature_probability: float = eqx.field(static=True)
    pairs: tuple[tuple[int, int], ...] = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    gate_inputs: Int[Array, "n_gates 2"]
    eval_set: FeatureBatch

    def __init__(self, n_features: int = 10, feature_probability: float = 0.3, gates="all", gate_seed: int = 0,
                 batch_size: int = 1024, n_eval: int = 4096, eval_seed: int = 0):
        require("and_gates task", problems(
            {"batch_size": batch_size, "n_eval": n_eval, "feature_probability": feature_probability,
             "n_features": n_features, "gate_seed": gate_seed, "eval_seed": eval_seed}, _CHECKS))
        self.n_features, self.feature_probability, self.batch_size = n_features, float(feature_probability), batch_size
        self.pairs = gate_pairs(n_features, gates, gate_seed)
        self.gate_inputs = jnp.asarray(self.pairs, jnp.int32)
        self.eval_set = self.sample(jax.random.PRNGKey(eval_seed), n_eval)

    @property
    def n_gates(self) -> int:
        return len(self.pairs)

    def output_names(self) -> list[str]:
        """One name per output (gate k: `x3∧x7`, its two inputs), for views."""
        return [f"x{a}∧x{b}" for a, b in self.pairs]

    def targets(self, x: Float[Array, "batch n_features"]) -> Float[Array, "batch n_gates"]:
        """Each gate's AND of its two inputs (1.0 or 0.0)."""
        return gate_targets(x, self.gate_inputs)

    def sample(self, key: PRNGKeyArray, n: int) -> FeatureBatch:
        return gate_examples(key, n, self.n_features, self.feature_probability, self.gate_inputs)

    def train_batch(self, key: PRNGKeyArray) -> FeatureBatch:
        return self.sample(key, self.batch_size)

    def eval_batches(self) -> dict[str, FeatureBatch]:
        return {"eval": self.eval_set}

    def model_dims(self) -> dict[str, int]:
        return {"n_features": self.n_features, "n_outputs": self.n_gates}

    def model_dims_for(self, kind: str) -> dict[str, int]:
        if kind == "transformer":
            return {"d_vocab": 2 * self.n_features + 1, "d_vocab_out": self.n_gates, "n_ctx": self.n_features + 1}
        return self.model_dims()

    def model_inputs(self, batch: FeatureBatch, kind: str) -> Array:
        """The feature vectors, or for a transformer the tokens `encode_tokens` makes of them."""
        return encode_tokens(batch.x) if kind == "transformer" else batch.x

    def gate_logits(self, model, x: Float[Array, "batch n_features"]) -> Float[Array, "batch n_gates"]:
        """The model's gate logits for inputs `x`, whatever its kind (a transformer, wrapped or not, reads
        `encode_tokens(x)` and answers at its last position)."""
        if model.kind == "transformer":
            readout = (self.n_features,)
            return jax.vmap(lambda t: model.forward(t, output_positions=readout)[0][0])(encode_tokens(x))
        return model(x)

    def output_comparison(self, kind: str) -> tuple[str, tuple[int, ...] | None]:
        """Binary KL between the gates' sigmoids (the loss is binary cross-entropy, and the logits are large and
        confident, so MSE on them would charge changes no sigmoid shows), a transformer's at its readout only."""
        return "binary_kl", (self.n_features,) if kind == "transformer" else None

    def loss(self, model, batch: FeatureBatch) -> Float[Array, ""]:
        return gate_loss(self.gate_logits(model, batch.x), batch.y)

    def evaluate(self, model, batch: FeatureBatch) -> dict[str, Array]:
        return gate_metrics(self.gate_logits(model, batch.x), batch.y)

    def render_tokens(self, tokens) -> list[str]:
        """One label per position: for the transformer's integer tokens (`encode_tokens`) `f3=1` / `f3=0` and the
        readout token `<read>`; for a float feature vector `[n_features]`, `f3=1` / `f3=0` per feature."""
        if not np.issubdtype(np.asarray(tokens).dtype, np.integer):
            return render_features(tokens, self.n_features, "and_gates", boolean=True)
        ids = one_sequence(tokens, 2 * self.n_features + 1, "and_gates")
        return [READOUT_TEXT if t == 2 * self.n_features else f"f{t // 2}={t % 2}" for t in ids]

    def to_string(self, x) -> str:
        """The features that are on in one input `[n_features]`, `f0 f3`."""
        return features_to_string(x, self.n_features, "and_gates", boolean=True)

    def from_string(self, text: str) -> Array:
        """The float32 `[n_features]` input of 0s and 1s `to_string` wrote (`encode_tokens` makes it tokens)."""
        return features_from_string(text, self.n_features, "and_gates", boolean=True)

    def facts(self) -> dict:
        """The theoretical sparse circuit: `pairs` `[n_gates, 2]` and `circuit` `[n_gates, n_features]` (True where
        an input feeds a gate)."""
        return {"pairs": np.asarray(self.pairs, np.int32), "circuit": circuit_matrix(self.pairs, self.n_features)}
