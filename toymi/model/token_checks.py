"""Token ids checked before a transformer reads them: JAX would clamp an out-of-range id in the embedding gather, wrap
an int64 id >= 2**31 when casting, or broadcast a wrong rank, each a silent wrong result."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from toymi.errors import CHECK_PREFIX


def check_tokens(tokens, d_vocab: int, n_ctx: int) -> Int[Array, "*batch pos"]:
    """`tokens` as a JAX integer array of shape `[pos]` or `[batch, pos]` with `0 < pos <= n_ctx` and ids in
    `[0, d_vocab)`; a one-line error otherwise (eagerly), or an on-device check (`CHECK_PREFIX`) under a trace."""
    if isinstance(tokens, str) or not hasattr(tokens, "shape") and not isinstance(tokens, (list, tuple)):
        raise TypeError(f"tokens must be an integer array of token ids, got {type(tokens).__name__} "
                        f"{tokens!r:.40}; a task's tokens come from its batches (task.eval_batches())")
    if not isinstance(tokens, (jax.Array, jax.core.Tracer)):
        host = np.asarray(tokens)  # checked before JAX casts it: int64 ids >= 2**31 would wrap to other ids
        if not np.issubdtype(host.dtype, np.integer):
            raise TypeError(f"tokens must be integers, got dtype {host.dtype}")
        _refuse_out_of_range(host, d_vocab)
    tokens = jnp.asarray(tokens)
    if tokens.ndim not in (1, 2):
        raise ValueError(f"tokens must be [pos] or [batch, pos], got shape {tokens.shape}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"tokens must be integers, got dtype {tokens.dtype}")
    if tokens.shape[-1] == 0:
        raise ValueError(f"tokens must hold at least one position, got shape {tokens.shape}")
    if tokens.shape[-1] > n_ctx:
        raise ValueError(f"sequence of length {tokens.shape[-1]} is longer than n_ctx={n_ctx}")
    if isinstance(tokens, jax.core.Tracer):
        # JAX's gather clamps out-of-range indices; under jit the check has to run on device.
        bad = (tokens < 0) | (tokens >= d_vocab)
        return eqx.error_if(tokens, bad.any(), f"{CHECK_PREFIX}token id out of range [0, {d_vocab})")
    _refuse_out_of_range(np.asarray(tokens), d_vocab)
    return tokens


def _refuse_out_of_range(host: np.ndarray, d_vocab: int) -> None:
    """The first out-of-range id and its index, in one line."""
    bad = (host < 0) | (host >= d_vocab)
    if bad.any():
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        raise ValueError(f"token id {int(host[where])} at index {where} is out of range [0, {d_vocab})")
