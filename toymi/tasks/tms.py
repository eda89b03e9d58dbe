"""Toy Models of Superposition (Elhage et al. 2022): reconstruct sparse features through a narrow bottleneck.

Each feature is U[0, 1] with probability `feature_probability` and 0 otherwise; the loss is the importance-weighted
squared error, mean over the batch and features (as in the paper's code). Feature pairs may be correlated or
anticorrelated, following the definitions the paper's correlated-features section uses (as reimplemented in ARENA):

- a correlated pair is active together: one draw with probability p decides both;
- an anticorrelated pair is never active together: the pair is "on" with probability 2p, then a fair coin picks
  which one of the two (so each feature is still active with probability p; needs p <= 1/2).

Feature layout: correlated pairs first, as (0, 1), (2, 3), ...; then anticorrelated pairs; then independent features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.tasks.base import Task
from toymi.tasks.features import FeatureBatch
from toymi.tasks.render import features_from_string, features_to_string, render_features
from toymi.validate import integer, is_int, is_number, number, optional, probability, problems, require


@eqx.filter_jit  # one compiled program, not a dozen one-op ones, for the eval set a task draws at construction
def sample_features(
    key: PRNGKeyArray, n_batch: int, n_features: int, p: float, n_correlated_pairs: int = 0,
    n_anticorrelated_pairs: int = 0,
) -> Float[Array, "batch feature"]:
    """Sparse features in the layout of the module docstring, drawn on device with static shapes.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `n_batch`, `n_features`: the output shape.
    - `p`: each feature's probability of being active (marginally, also inside pairs).
    - `n_correlated_pairs`, `n_anticorrelated_pairs`: how many of the leading features come in pairs.

    **Returns:** `[n_batch, n_features]`, each entry 0 or U[0, 1).
    """
    n_single = n_features - 2 * (n_correlated_pairs + n_anticorrelated_pairs)
    # Independent features take one uniform draw u each: active when u < p, value u / p. Given u < p, u / p is
    # U[0, 1), so this is the same distribution as separate "active?" and "value" draws at half the random bits
    # (drawing random numbers is most of a small TMS model's step).
    k_single, k_pairs = jax.random.split(key)
    u = jax.random.uniform(k_single, (n_batch, n_single))
    single = jnp.where(u < p, u / p, 0.0)
    if n_correlated_pairs + n_anticorrelated_pairs == 0:
        return single
    k_value, k_corr, k_anti, k_which = jax.random.split(k_pairs, 4)
    n_paired = 2 * (n_correlated_pairs + n_anticorrelated_pairs)
    values = jax.random.uniform(k_value, (n_batch, n_paired))
    corr = jax.random.uniform(k_corr, (n_batch, n_correlated_pairs)) < p
    anti_on = jax.random.uniform(k_anti, (n_batch, n_anticorrelated_pairs)) < 2 * p
    first = jax.random.uniform(k_which, (n_batch, n_anticorrelated_pairs)) < 0.5
    anti = jnp.stack([anti_on & first, anti_on & ~first], axis=-1).reshape(n_batch, 2 * n_anticorrelated_pairs)
    paired = jnp.where(jnp.concatenate([jnp.repeat(corr, 2, axis=1), anti], axis=1), values, 0.0)
    return jnp.concatenate([paired, single], axis=1)


def importance_weights(n_features: int, decay: float | None = None, last: float | None = None,
                       given: Sequence[float] | None = None) -> np.ndarray:
    """Per-feature importance: `decay ** i`, or `last ** linspace(0, 1, n)` (geometric from 1 down to `last`), or
    the `given` list, or all ones when none is set (at most one may be)."""
    if decay is not None:
        return np.asarray(decay, np.float64) ** np.arange(n_features)
    if last is not None:
        return np.asarray(last, np.float64) ** np.linspace(0.0, 1.0, n_features)
    if given is not None:
        return np.asarray(given, np.float64)
    return np.ones(n_features)


_POSITIVE = number(0, low_open=True, says="a positive number")
_CHECKS = {"n_features": integer(1), "feature_probability": probability, "importance_decay": optional(_POSITIVE),
           "importance_last": optional(_POSITIVE), "n_correlated_pairs": integer(0),
           "n_anticorrelated_pairs": integer(0), "batch_size": integer(1), "eval_size": integer(1),
           "data_seed": integer(0)}


def _relations(n_features, feature_probability, importance_decay, importance_last, importance,
               n_correlated_pairs, n_anticorrelated_pairs, **_) -> Iterator[str]:
    """The problems between settings (each checked only where the settings it reads passed their own checks)."""
    chosen = [name for name, v in (("importance_decay", importance_decay), ("importance_last", importance_last),
                                   ("importance", importance)) if v is not None]
    if len(chosen) > 1:
        yield f"set at most one of importance_decay, importance_last and importance, got {chosen}"
    n_ok = is_int(n_features) and n_features >= 1
    if importance is not None and (
        not isinstance(importance, (list, tuple)) or not all(is_number(v) and v >= 0 for v in importance)
        or (n_ok and len(importance) != n_features)
    ):
        yield f"importance must be a list of n_features={n_features!r} numbers >= 0, got {importance!r}"
    pairs = (n_correlated_pairs, n_anticorrelated_pairs)
    if n_ok and all(is_int(n) and n >= 0 for n in pairs) and 2 * sum(pairs) > n_features:
        yield (f"{n_correlated_pairs} correlated and {n_anticorrelated_pairs} anticorrelated pairs need "
               f"{2 * sum(pairs)} features, more than n_features={n_features}")
    if n_anticorrelated_pairs and is_number(feature_probability) and feature_probability > 0.5:
        yield (f"anticorrelated pairs need feature_probability <= 0.5 (a pair is on with probability "
               f"2p), got {feature_probability}")


class ToyModelsOfSuperposition(Task):
    """Reconstruct `n_features` sparse features (a `"tms"` model squeezes them through `d_hidden` dimensions).

    **Arguments:**

    - `n_features`: how many features.
    - `feature_probability`: each feature's probability of being nonzero (1 - sparsity), in (0, 1].
    - `importance_decay`: importance `importance_decay ** i` (the paper's 0.9^i, 0.7^i).
    - `importance_last`: importance `importance_last ** linspace(0, 1, n)`, geometric from 1 down to
      `importance_last` (0.01 gives the paper's 100^-linspace(0, 1, n)).
    - `importance`: the importances, one per feature. Set at most one of these three; none means all ones.
    - `n_correlated_pairs`, `n_anticorrelated_pairs`: leading features that come in pairs (module docstring).
    - `batch_size`: examples sampled on device per training step.
    - `eval_size`: examples in the fixed `test` batch.
    - `data_seed`: seed of the `test` batch (training batches come from the run's `train.seed`).
    """

    model_kinds: ClassVar[tuple[str, ...]] = ("tms",)
    predicts_next_token: ClassVar[bool] = False  # the model reconstructs features
    # the loss scales with density and importance: a sweep reports the final fraction of the all-zero output's loss
    sweep_summary: ClassVar[tuple[str, float | None]] = ("test_loss_fraction", None)

    n_features: int = eqx.field(static=True)
    feature_probability: Float[Array, ""]  # an array, so an ensemble's members can sweep the density
    n_correlated_pairs: int = eqx.field(static=True)
    n_anticorrelated_pairs: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    feature_importance: Float[Array, " feature"]
    test: FeatureBatch

    def __init__(self, n_features: int = 5, feature_probability: float = 0.05, importance_decay: float | None = None,
                 importance_last: float | None = None, importance: Sequence[float] | None = None,
                 n_correlated_pairs: int = 0, n_anticorrelated_pairs: int = 0, batch_size: int = 1024,
                 eval_size: int = 10_000, data_seed: int = 0):
        values = {"n_features": n_features, "feature_probability": feature_probability,
                  "importance_decay": importance_decay, "importance_last": importance_last,
                  "n_correlated_pairs": n_correlated_pairs, "n_anticorrelated_pairs": n_anticorrelated_pairs,
                  "batch_size": batch_size, "eval_size": eval_size, "data_seed": data_seed}
        require("tms task", [*problems(values, _CHECKS), *_relations(importance=importance, **values)])
        self.n_features = n_features
        self.feature_probability = jnp.asarray(feature_probability, jnp.float32)
        self.n_correlated_pairs, self.n_anticorrelated_pairs = n_correlated_pairs, n_anticorrelated_pairs
        self.batch_size = batch_size
        weights = importance_weights(n_features, importance_decay, importance_last, importance)
        self.feature_importance = jnp.asarray(weights, jnp.float32)
        self.test = self.sample(jax.random.PRNGKey(data_seed), eval_size)

    def sample(self, key: PRNGKeyArray, n_batch: int) -> FeatureBatch:
        """`n_batch` fresh examples from this task's distribution (an autoencoder's: the target is the input)."""
        x = sample_features(key, n_batch, self.n_features, self.feature_probability, self.n_correlated_pairs,
                            self.n_anticorrelated_pairs)
        return FeatureBatch(x=x, y=x)

    def train_batch(self, key: PRNGKeyArray) -> FeatureBatch:
        return self.sample(key, self.batch_size)

    def eval_batches(self) -> dict[str, FeatureBatch]:
        return {"test": self.test}

    def model_dims(self) -> dict[str, int]:
        return {"n_features": self.n_features}

    def weighted_error(self, target: Float[Array, "batch feature"],
                       out: Float[Array, "batch feature"]) -> Float[Array, ""]:
        """Importance-weighted squared error, mean over batch and features."""
        return jnp.mean(self.feature_importance * (target - out) ** 2)

    def output_comparison(self, kind: str) -> tuple[str, tuple[int, ...] | None]:
        """MSE between the reconstructions (as the SPD paper compares TMS models)."""
        del kind
        return "mse", None

    def loss(self, model, batch: FeatureBatch) -> Float[Array, ""]:
        return self.weighted_error(batch.y, model(batch.x))

    def evaluate(self, model, batch: FeatureBatch) -> dict[str, Array]:
        """`loss`, and `loss_fraction`: the loss over that of always answering 0 (1 = nothing learned; not named
        `*_loss`, which the training-curve plot would read as another eval set)."""
        loss = self.loss(model, batch)
        return {"loss": loss, "loss_fraction": loss / self.weighted_error(batch.y, jnp.zeros_like(batch.y))}

    def render_tokens(self, x) -> list[str]:
        """One label per feature of one input `[n_features]`: `f3=0.71` (`f0=0` when off)."""
        return render_features(x, self.n_features, 'tms')

    def to_string(self, x) -> str:
        """The active features of one input, `f3=0.71 f17=0.2`."""
        return features_to_string(x, self.n_features, 'tms')

    def from_string(self, text: str) -> Array:
        """The float32 `[n_features]` input `to_string` wrote (unnamed features 0)."""
        return features_from_string(text, self.n_features, 'tms')

    def facts(self) -> dict:
        """The true feature directions (the identity basis of feature space, one per row), importances, density and
        the paired features' indices; `toymi.analysis.tms` measures a trained `W` against them."""
        n_corr, n_anti = self.n_correlated_pairs, self.n_anticorrelated_pairs
        return {
            "feature_directions": jnp.eye(self.n_features),
            "importance": self.feature_importance,
            "feature_probability": self.feature_probability,
            "correlated_pairs": np.arange(2 * n_corr).reshape(n_corr, 2),
            "anticorrelated_pairs": np.arange(2 * n_corr, 2 * (n_corr + n_anti)).reshape(n_anti, 2),
        }
