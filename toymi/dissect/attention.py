"""Attention head scores: how much each head attends where a known mechanism would, for every head at once.

A score is the mean attention, over every query position that has a target, from that query to its target key:

- previous-token: the key just before the query;
- duplicate-token: the most recent earlier occurrence of the query's own token;
- induction (prefix matching, Olsson et al. 2022): the key just after that earlier occurrence, whose token is what
  came next last time. Measured on repeated random sequences (`repeated_random_tokens`): a random first copy gives no
  other reason to attend there, so only an induction head scores high.

Scores are computed from captured patterns `[*batch, layer, head, query_pos, key_pos]` in one einsum over every
layer and head; `head_scores` runs the model too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.jit import jit
from toymi.tasks.induction import induction_targets, repeat_body


def pattern_score(
    pattern: Float[Array, "*batch layer head query_pos key_pos"], targets: Int[Array, "*batch query_pos"]
) -> Float[Array, "layer head"]:
    """Mean attention from each query to its target key, averaged over batch and every query with a target.

    **Arguments:**

    - `pattern`: attention patterns, e.g. `acts["pattern"]` from a batched run.
    - `targets`: for each query, the key it should attend to, or -1 for queries without one (not counted);
      broadcast against the pattern's batch axes.

    **Returns:** `[layer, head]` scores in [0, 1].
    """
    pattern = jnp.asarray(pattern)
    if pattern.ndim < 4 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must be [*batch, layer, head, query_pos, key_pos], got shape {pattern.shape}")
    n_pos = pattern.shape[-1]
    targets = jnp.broadcast_to(targets, pattern.shape[:-4] + (n_pos,))
    valid = targets >= 0  # [*batch, query]
    onehot = jax.nn.one_hot(targets, n_pos) * valid[..., None]  # [*batch, query, key]; -1 gives a zero row anyway
    on_target = jnp.einsum("...lhqk,...qk->...lhq", pattern, onehot)
    batch_axes = tuple(range(pattern.ndim - 4))
    total = on_target.sum(batch_axes + (-1,))
    return total / jnp.maximum(valid.sum(), 1)


def previous_token_targets(n_pos: int) -> Int[Array, " pos"]:
    """Each query's previous position (-1 at position 0, which has none)."""
    return jnp.arange(n_pos) - 1


def duplicate_token_targets(tokens: Int[Array, "*batch pos"]) -> Int[Array, "*batch pos"]:
    """Each query's most recent earlier occurrence of its own token, or -1 if it has none."""
    after = induction_targets(tokens)
    return jnp.where(after >= 0, after - 1, -1)


def previous_token_score(pattern: Float[Array, "*batch layer head query_pos key_pos"]) -> Float[Array, "layer head"]:
    """Mean attention to the previous token, over every query but the first."""
    return pattern_score(pattern, previous_token_targets(pattern.shape[-1]))


def duplicate_token_score(pattern, tokens: Int[Array, "*batch pos"]) -> Float[Array, "layer head"]:
    """Mean attention from each repeated token to its earlier occurrence."""
    return pattern_score(pattern, duplicate_token_targets(tokens))


def induction_score(pattern, tokens: Int[Array, "*batch pos"]) -> Float[Array, "layer head"]:
    """Mean attention from each repeated token to the token after its earlier occurrence (prefix matching)."""
    return pattern_score(pattern, induction_targets(tokens))


@jit  # one compiled program (eagerly, each op compiles on first use: most of a report's first second)
def repeated_random_tokens(
    key: PRNGKeyArray, n_seqs: int, half_len: int, vocab: int, bos: int | None = None
) -> Int[Array, "n_seqs pos"]:
    """`n_seqs` sequences of `half_len` distinct random tokens from `[0, vocab)` followed by the same tokens again,
    optionally after a `bos` token: the standard probe for induction heads.

    **Returns:** `[n_seqs, 2 * half_len]` (plus 1 with `bos`).
    """
    if not 1 <= half_len <= vocab:
        raise ValueError(f"half_len must be in [1, vocab={vocab}] so the first copy has distinct tokens, got {half_len}")
    tokens = repeat_body(key, n_seqs, half_len, 2, vocab)
    if bos is not None:
        tokens = jnp.concatenate([jnp.full((n_seqs, 1), bos, tokens.dtype), tokens], axis=1)
    return tokens


@jit  # the forward pass and the scores as one program, not op by op
def head_scores(model, tokens: Int[Array, "batch pos"]) -> dict[str, Float[Array, "layer head"]]:
    """Previous-token, duplicate-token and induction scores of every head on `tokens` (one forward pass).

    **Arguments:**

    - `model`: a `Transformer`.
    - `tokens`: `[batch, pos]`, normally `repeated_random_tokens(...)`.

    **Returns:** `{"previous_token": ..., "duplicate_token": ..., "induction": ...}`, each `[layer, head]`.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [batch, pos], got shape {tokens.shape}")
    _, acts = model.run(tokens, capture=["pattern"])
    pattern = acts["pattern"]
    return {
        "previous_token": previous_token_score(pattern),
        "duplicate_token": duplicate_token_score(pattern, tokens),
        "induction": induction_score(pattern, tokens),
    }
