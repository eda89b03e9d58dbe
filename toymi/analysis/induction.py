"""Induction: which heads carry the mechanism, by patching each head from runs where nothing earlier predicts the
repeated half. (Head scores from attention patterns, which apply to any transformer, are `toymi.dissect.attention`.)"""

from __future__ import annotations

import jax
import numpy as np
from jaxtyping import Array, Int

from toymi.dissect.attention import repeated_random_tokens
from toymi.dissect.metrics import CrossEntropy
from toymi.dissect.patching import patching_grid, run_metric


def second_copy_head_patching(model, tokens: Int[Array, "batch pos"], half: int, bos: int | None
                              ) -> dict[str, float | np.ndarray]:
    """Noising: the clean run on repeated sequences, each head's output taken from a run whose first copy was replaced
    by other random tokens (so nothing earlier predicts the second copy). A head whose patch raises the loss on the
    second copy carries the induction mechanism.

    **Arguments:** `tokens` from `repeated_random_tokens(..., half, ..., bos=bos)`; `half` the length of one copy;
    `bos` the BOS token, or None when the sequences have none.

    **Returns:** `{"clean", "corrupted"}`: the loss on the second copy of the clean and the corrupted run, and
    `"grid"` `[layer, head]`: that loss with each head's `z` patched from the corrupted run.
    """
    vocab = min(model.config.d_vocab, model.config.d_vocab_out)
    other = repeated_random_tokens(jax.random.PRNGKey(1), tokens.shape[0], half, vocab, bos=bos)
    first = 0 if bos is None else 1  # where the first copy starts (after BOS, which is kept)
    corrupted = tokens.at[:, first:first + half].set(other[:, first:first + half])
    second_copy = np.zeros(tokens.shape, bool)
    second_copy[:, first + half:] = True
    metric = CrossEntropy.next_token(tokens, second_copy)
    clean, broken = float(run_metric(model, tokens, metric)), float(run_metric(model, corrupted, metric))
    grid = np.asarray(patching_grid(model, tokens, corrupted, metric, "z", ("layer", "head"), direction="noising"))
    return {"clean": clean, "corrupted": broken, "grid": grid}
