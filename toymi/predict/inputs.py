"""What `show` and `generate` accept as input: a task's text or token ids, checked against the task and model."""

from __future__ import annotations

import numpy as np


def prompt_tokens(model, task, prompt, what: str) -> np.ndarray:
    """`prompt` (text read with `task.from_string`, or `[pos]` / `[batch, pos]` token ids) as host token ids, after
    the model's own input checks; a task whose model does not predict next tokens is refused by name."""
    if not task.predicts_next_token:
        raise TypeError(f"{what} reads next-token predictions, and {type(task).__name__}'s models output "
                        "feature values; render its inputs with task.to_string")
    if isinstance(prompt, str):
        prompt = task.from_string(prompt)
    return np.asarray(model.check_inputs(prompt))
