"""Multi-head causal self-attention with per-head weights in the layout interpretability code expects."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model import init
from toymi.model.hooks import Hooks
from toymi.model.positions import position_ids, take_positions

if TYPE_CHECKING:  # annotations only: transformer.py (ModelConfig's home) imports this module
    from toymi.model.transformer import ModelConfig


def heads_in(x: Float[Array, "pos d_model"], W) -> Float[Array, "pos head d_head"]:
    """`x` through per-head input weights `W` `[head, d_model, d_head]` (queries, keys or values). `W` may instead be
    an object with a `heads_in(x)` method that stands in for the array (SPD's masked, factored weights:
    `toymi.decompose.parameters.targets_transformer.HeadsView`)."""
    return W.heads_in(x) if hasattr(W, "heads_in") else jnp.einsum("pd,hde->phe", x, W)


def heads_out(z: Float[Array, "pos head d_head"], W) -> Float[Array, "pos head d_model"]:
    """Each head's output `z_h @ W_O[h]` for `W` `[head, d_head, d_model]`, or an object with `heads_out(z)`."""
    return W.heads_out(z) if hasattr(W, "heads_out") else jnp.einsum("qhe,hed->qhd", z, W)


def heads_out_sum(z: Float[Array, "pos head d_head"], W) -> Float[Array, "pos d_model"]:
    """`heads_out` summed over heads; for an array one einsum, without the per-head `[pos, head, d_model]`."""
    return W.heads_out(z).sum(1) if hasattr(W, "heads_out") else jnp.einsum("qhe,hed->qd", z, W)


class Attention(eqx.Module):
    W_Q: Float[Array, "head d_model d_head"]
    W_K: Float[Array, "head d_model d_head"]
    W_V: Float[Array, "head d_model d_head"]
    W_O: Float[Array, "head d_head d_model"]
    b_Q: Float[Array, "head d_head"]
    b_K: Float[Array, "head d_head"]
    b_V: Float[Array, "head d_head"]
    b_O: Float[Array, " d_model"]

    def __init__(self, config: ModelConfig, key: PRNGKeyArray):
        h, d, e = config.n_heads, config.d_model, config.d_head
        kq, kk, kv, ko = init.split(key, 4)
        s_in = config.init_scale / math.sqrt(d)
        s_out = config.init_scale / math.sqrt(h * e)
        self.W_Q = init.normal(kq, (h, d, e), s_in)
        self.W_K = init.normal(kk, (h, d, e), s_in)
        self.W_V = init.normal(kv, (h, d, e), s_in)
        self.W_O = init.normal(ko, (h, e, d), s_out)
        self.b_Q = init.zeros((h, e))
        self.b_K = init.zeros((h, e))
        self.b_V = init.zeros((h, e))
        self.b_O = init.zeros(d)

    def project(
        self, x: Float[Array, "pos d_model"], query_positions: tuple[int, ...] | None = None, with_bias: bool = True,
    ) -> tuple[Float[Array, "query head d_head"], Float[Array, "pos head d_head"], Float[Array, "pos head d_head"]]:
        """Queries (at `query_positions`, default all), keys and values of the residual stream `x` (with biases, or
        the linear part alone)."""
        q = heads_in(take_positions(x, query_positions), self.W_Q)
        k = heads_in(x, self.W_K)
        v = heads_in(x, self.W_V)
        if not with_bias:
            return q, k, v
        return q + self.b_Q, k + self.b_K, v + self.b_V

    def __call__(
        self, x: Float[Array, "pos d_model"], hooks: Hooks, layer: int, query_positions: tuple[int, ...] | None = None,
        qkv: tuple[Array, Array, Array] | None = None,
    ) -> Float[Array, "query d_model"]:
        """Attend from every position, or only from `query_positions` (keys and values still cover every position).

        `qkv`, when given, replaces `self.project(x, query_positions)` (see `toymi.model.embedding_tables`).
        """
        n = x.shape[0]
        q, k, v = self.project(x, query_positions) if qkv is None else qkv
        q, k, v = hooks("q", layer, q), hooks("k", layer, k), hooks("v", layer, v)
        causal = position_ids(n, query_positions)[:, None] >= np.arange(n)[None, :]  # [query_pos, key_pos]
        scores = jnp.einsum("qhe,khe->hqk", q, k) / math.sqrt(q.shape[-1])
        scores = hooks("attn_scores", layer, jnp.where(causal, scores, -jnp.inf))
        pattern = hooks("pattern", layer, jax.nn.softmax(scores, axis=-1))
        z = hooks("z", layer, jnp.einsum("hqk,khe->qhe", pattern, v))
        if hooks.wants("result"):
            # Per-head outputs cost n_heads times the memory of attn_out: only materialise them when asked.
            result = hooks("result", layer, heads_out(z, self.W_O))
            out = result.sum(1) + self.b_O
        else:
            out = heads_out_sum(z, self.W_O) + self.b_O
        return hooks("attn_out", layer, out)
