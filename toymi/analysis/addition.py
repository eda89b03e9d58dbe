"""Multi-digit addition (Quirke & Barez): the loss at each answer digit, per subtask (base add, make/use carry,
sum-9 cascades; `toymi.tasks.addition.subtask_labels`), and accuracy on questions built with sum-9 cascades of a
given length (`cascade_questions`, `cascade_length`, `predict`)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from toymi.tasks.addition import random_digits, sequence_tokens, subtask_labels
from toymi.tasks.base import Batch, token_nll


def per_token_loss(task, model, batch) -> jax.Array:
    """Cross-entropy at each answer digit: `[batch, n_digits + 1]`."""
    logits, scored = task.scored_logits(model, batch)
    return token_nll(logits.astype(jnp.float32), scored.targets)


def subtask_loss(loss, labels: dict) -> dict[str, np.ndarray]:
    """Mean loss per subtask and answer digit: `{subtask: [n_digits + 1]}` (NaN where no example has it)."""
    out = {}
    for name, mask in labels.items():
        mask = np.asarray(mask, float)
        with np.errstate(invalid="ignore"):
            out[name] = (np.asarray(loss) * mask).sum(0) / mask.sum(0)
    return out


def questions(task, a_digits, b_digits) -> Batch:
    """The task's batch for the questions `a + b` (digit arrays `[q, n_digits]`, least significant first), loss at
    the answer positions."""
    tokens = sequence_tokens(jnp.asarray(a_digits), jnp.asarray(b_digits))
    targets = jnp.concatenate([tokens[:, 1:], jnp.zeros_like(tokens[:, :1])], axis=1)
    mask = np.zeros(tokens.shape[1], np.float32)
    mask[list(task.loss_positions())] = 1.0
    return Batch(tokens, targets, jnp.broadcast_to(jnp.asarray(mask), tokens.shape))


@eqx.filter_jit
def _predict(task, model, batch):
    logits, scored = task.scored_logits(model, batch)
    return logits.argmax(-1), token_nll(logits.astype(jnp.float32), scored.targets)


def predict(task, model, batch, chunk: int = 4096, digits: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`(right, loss)`, each `[q, n_digits + 1]` over the answer digits `s_n .. s_0`: whether each digit is
    predicted right under teacher forcing (or, with `digits`, the predicted digits), and its loss. The questions are
    run `chunk` at a time, padded to whole chunks: one compiled shape per model."""
    size = len(batch)
    batch = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[:1], -size % chunk, axis=0)]), batch)
    parts = [_predict(task, model, jax.tree.map(lambda x: x[i:i + chunk], batch)) for i in range(0, len(batch), chunk)]
    guess, loss = (np.concatenate([np.asarray(p[j]) for p in parts])[:size] for j in (0, 1))
    if digits:
        return guess, loss
    return guess == np.asarray(batch.targets[:size][:, list(task.loss_positions())]), loss


def cascade_length(a_digits, b_digits) -> np.ndarray:
    """`[q]`: the longest run of sum-9 digits a carry passes through in each question (0: a carry is used directly
    or none is made)."""
    labels = subtask_labels(jnp.asarray(a_digits), jnp.asarray(b_digits))
    uc, us = np.asarray(labels["UC"]), np.asarray(labels["US"])
    run = np.full(uc.shape, -1)
    for i in range(1, uc.shape[-1]):  # a carry made at i-1 has run 0; one passed on by a sum-9 digit adds 1
        run[:, i] = np.where(uc[:, i], 0, np.where(us[:, i], run[:, i - 1] + 1, -1))
    return np.maximum(run.max(-1), 0)


def cascade_questions(key, n_digits: int, length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`size` questions, each with a carry made at a random digit and passed on through `length` sum-9 digits above
    it (the other digits uniform, so some questions have longer cascades: bucket by `cascade_length`)."""
    a, b = (np.array(x) for x in random_digits(key, (size, n_digits)))
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    start = rng.integers(0, n_digits - length, size)
    carry = np.array([(x, y) for x in range(10) for y in range(10) if x + y >= 10])[rng.integers(0, 45, size)]
    rows = np.arange(size)
    a[rows, start], b[rows, start] = carry[:, 0], carry[:, 1]
    for j in range(1, length + 1):
        nine = rng.integers(0, 10, size)
        a[rows, start + j], b[rows, start + j] = nine, 9 - nine
    return a, b
