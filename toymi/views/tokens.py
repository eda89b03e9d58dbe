"""Token labels for views: the task's own rendering (`Task.render_tokens`), checked for one label per token."""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Int


def token_labels(task, tokens: Int[Array, " pos"]) -> list[str]:
    """One sequence's tokens as strings: `task.render_tokens(tokens)` (every task has it), or integers without a task.

    **Arguments:**

    - `task`: the run's task (or None: integers).
    - `tokens`: `[pos]` token ids.

    **Returns:** one label per position.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"token_labels takes one sequence [pos], got shape {tokens.shape}")
    if task is None:
        return [str(int(t)) for t in tokens]
    labels = [str(s) for s in task.render_tokens(tokens)]
    if len(labels) != len(tokens):
        raise ValueError(f"{type(task).__name__}.render_tokens gave {len(labels)} labels for {len(tokens)} tokens")
    return labels
