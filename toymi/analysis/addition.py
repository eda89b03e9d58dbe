"""Multi-digit addition (Quirke & Barez): the loss at each answer digit, and per subtask (base add, make/use carry,
sum-9 cascades; `toymi.tasks.addition.subtask_labels`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from toymi.tasks.base import token_nll


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
