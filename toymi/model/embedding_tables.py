"""Layer 0's queries, keys and values read from per-token and per-position tables.

Without a normalisation before the first attention, its input at a position is `W_E[token] + W_pos[pos]`, so
`q = (W_E @ W_Q)[token] + (W_pos @ W_Q)[pos] + b_Q`, and the same for k and v. For a toy vocabulary the tables
(`d_vocab + n_ctx` rows) are far smaller than a batch's `batch * pos` rows: a 3,830-pair grokking batch projects
11,490 rows where the tables need 117. Under `vmap` the tables do not depend on the batch, so they are computed
once per call. The result equals the direct projection up to float rounding (the sum is split differently).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from toymi.model.attention import Attention
from toymi.model.config import ModelConfig
from toymi.model.positions import take_positions

# Beyond this many table rows the direct projection is the cheaper choice for any sensible batch.
MAX_TABLE_ROWS = 4096

# Interventions at these sites change layer 0's attention input, which the tables assume is embed + pos_embed.
UPSTREAM_SITES = frozenset({"embed", "pos_embed", "resid_pre"})


def tables_possible(config: ModelConfig) -> bool:
    """Whether layer 0 can read q, k, v from tables at all: no norm before it and a toy vocabulary."""
    return not config.has_norm and config.d_vocab + config.n_ctx <= MAX_TABLE_ROWS


def tables_apply(config: ModelConfig, intervened_sites: frozenset[str]) -> bool:
    """Whether the tables alone give layer 0's q, k, v: possible, and nothing changed the input they assume. When
    something did, the forward pass adds the projection of the change (`correct_qkv`) instead of dropping them."""
    return tables_possible(config) and not (intervened_sites & UPSTREAM_SITES)


def correct_qkv(attn: Attention, qkv: tuple[Array, Array, Array], change: Float[Array, "pos d_model"],
                query_positions: tuple[int, ...] | None) -> tuple[Array, Array, Array]:
    """The tables' q, k, v plus the projection (without biases) of `change`, the difference between layer 0's
    actual input and the `embed + pos_embed` the tables assume. A patch that puts back the clean value makes the
    change exactly 0, so its output is bit-identical to the clean run's (a direct projection would differ by
    rounding: the sum is split differently)."""
    dq, dk, dv = attn.project(change, query_positions, with_bias=False)
    return qkv[0] + dq, qkv[1] + dk, qkv[2] + dv


def layer0_qkv(
    attn: Attention, W_E: Float[Array, "d_vocab d_model"], W_pos: Float[Array, "n_ctx d_model"] | None,
    tokens: Int[Array, " pos"], query_positions: tuple[int, ...] | None,
) -> tuple[Float[Array, "query head d_head"], Float[Array, "pos head d_head"], Float[Array, "pos head d_head"]]:
    """`attn.project(W_E[tokens] + W_pos[:pos], query_positions)`, computed through the tables."""
    n = tokens.shape[0]

    def project(W: Array, b: Array, rows: tuple[int, ...] | None) -> Array:
        token_part = jnp.einsum("vd,hde->vhe", W_E, W)[take_positions(tokens, rows)]
        if W_pos is None:
            return token_part + b
        return token_part + take_positions(jnp.einsum("pd,hde->phe", W_pos[:n], W), rows) + b

    return (project(attn.W_Q, attn.b_Q, query_positions), project(attn.W_K, attn.b_K, None),
            project(attn.W_V, attn.b_V, None))
