"""Patching metrics: functions from logits to one number, and the normalised patching score.

A causal method (patching, ablation, steering) runs the model many times and reduces each run's logits to a scalar
with a *metric*. Any callable `logits -> scalar` works; the metrics here are Equinox modules, so their arrays (answer
tokens, masks) are traced leaves: a new `LogitDiff` with other answers reuses the compiled grid instead of baking the
answers into a new program.

A metric sees the logits of the whole batch at once, `[batch, pos, d_vocab_out]` (or `[pos, d_vocab_out]` for one
sequence), because a patch is applied to every example together and the metric is their mean.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from toymi.tasks.base import token_nll


def _at_positions(logits: Float[Array, "*batch pos vocab"],
                  position: Int[Array, "*batch"]) -> Float[Array, "*batch vocab"]:
    """`logits[b, position[b]]` for every example (negative positions count from the end)."""
    n = logits.shape[-2]
    index = jnp.where(position < 0, position + n, position)
    return jnp.take_along_axis(logits, index[..., None, None], axis=-2)[..., 0, :]


class LogitDiff(eqx.Module):
    """Mean over the batch of `logit[correct] - logit[wrong]` at `position` (the IOI-style logit difference).

    **Arguments:**

    - `correct`, `wrong`: answer token ids, one per example (`[batch]`, or scalars for one sequence).
    - `position`: where the answer is read, one per example or one for all; default the last position.
    """

    correct: Int[Array, "*batch"]
    wrong: Int[Array, "*batch"]
    position: Int[Array, "*batch"]

    def __init__(self, correct: ArrayLike, wrong: ArrayLike, position: ArrayLike = -1):
        self.correct = jnp.asarray(correct, jnp.int32)
        self.wrong = jnp.asarray(wrong, jnp.int32)
        if self.correct.shape != self.wrong.shape:
            raise ValueError(f"correct {self.correct.shape} and wrong {self.wrong.shape} answers differ in shape")
        self.position = jnp.broadcast_to(jnp.asarray(position, jnp.int32), self.correct.shape)

    def __call__(self, logits: Float[Array, "*batch pos vocab"]) -> Float[Array, ""]:
        if logits.ndim - 2 != self.correct.ndim:
            raise ValueError(f"LogitDiff built for answers of shape {self.correct.shape} got logits of shape "
                             f"{logits.shape}: expected [{'batch, ' * self.correct.ndim}pos, d_vocab_out]")
        at = _at_positions(logits, self.position)
        pick = lambda tok: jnp.take_along_axis(at, tok[..., None], axis=-1)[..., 0]  # noqa: E731
        return jnp.mean(pick(self.correct) - pick(self.wrong))


class CrossEntropy(eqx.Module):
    """Mean cross-entropy of `targets` over the positions `mask` selects (the model's loss, as a metric).

    **Arguments:**

    - `targets`: `[*batch, pos]` target ids for every position's logits.
    - `mask`: `[*batch, pos]` booleans, the positions scored; None scores all.

    `CrossEntropy.next_token(tokens, mask)` builds the usual language-model loss: position `i` predicts token `i + 1`
    (the last position is never scored).
    """

    targets: Int[Array, "*batch pos"]
    mask: Bool[Array, "*batch pos"]

    def __init__(self, targets: ArrayLike, mask: ArrayLike | None = None):
        self.targets = jnp.asarray(targets, jnp.int32)
        self.mask = jnp.ones(self.targets.shape, bool) if mask is None else jnp.asarray(mask, bool)
        if self.mask.shape != self.targets.shape:
            raise ValueError(f"mask {self.mask.shape} and targets {self.targets.shape} differ in shape")
        if not isinstance(self.mask, jax.core.Tracer) and not np.asarray(self.mask).any():
            raise ValueError("the mask selects no position: the loss would be 0/0")

    @classmethod
    def next_token(cls, tokens: ArrayLike, mask: ArrayLike | None = None) -> "CrossEntropy":
        """Loss of predicting `tokens[..., i + 1]` from position `i`; `mask` (`[*batch, pos]`) further restricts."""
        tokens = jnp.asarray(tokens, jnp.int32)
        targets = jnp.concatenate([tokens[..., 1:], jnp.zeros_like(tokens[..., :1])], axis=-1)
        scored = jnp.ones(tokens.shape, bool).at[..., -1].set(False)
        if mask is not None:
            scored &= jnp.asarray(mask, bool)
        return cls(targets, scored)

    def __call__(self, logits: Float[Array, "*batch pos vocab"]) -> Float[Array, ""]:
        if logits.shape[:-1] != self.targets.shape:
            raise ValueError(f"CrossEntropy built for targets of shape {self.targets.shape} got logits of shape "
                             f"{logits.shape}")
        nll = token_nll(logits, self.targets)
        return jnp.sum(jnp.where(self.mask, nll, 0.0)) / jnp.sum(self.mask)


def normalised(value: ArrayLike, clean: ArrayLike, corrupted: ArrayLike) -> Float[Array, "..."]:
    """`(value - corrupted) / (clean - corrupted)`: 1 where a patch leaves the clean behaviour intact, 0 where it
    brings the model all the way to its corrupted behaviour (in the denoising direction: the fraction recovered).

    The same formula serves both directions, so grids from different inputs or models share one scale.
    """
    clean, corrupted = jnp.asarray(clean), jnp.asarray(corrupted)
    gap = clean - corrupted
    if not isinstance(gap, jax.core.Tracer) and np.any(np.asarray(gap) == 0):
        raise ValueError(f"clean and corrupted metrics are equal ({float(np.asarray(clean).ravel()[0]):.6g}): "
                         "the inputs do not differ in what the metric measures, so nothing can be normalised")
    return (jnp.asarray(value) - corrupted) / gap
