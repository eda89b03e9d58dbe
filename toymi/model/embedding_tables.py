"""Layer 0's queries, keys and values read from per-token and per-position tables.

Without a normalisation before the first attention, its input at a position is `W_E[token] + W_pos[pos]`, so
`q = (W_E @ W_Q)[token] + (W_pos @ W_Q)[pos] + b_Q`, and the same for k and v. For a toy vocabulary the tables
(`d_vocab + n_ctx` rows) are far smaller than a batch's `batch * pos` rows: a 3,830-pair grokking batch projects
11,490 rows where the tables need 117. Under `vmap` the tables do not depend on the batch, so they are computed
once per call. The result equals the direct projection up to float rounding (the sum is split differently).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from toymi.model.attention import Attention
from toymi.model.positions import take_positions

if TYPE_CHECKING:  # annotations only: transformer.py (ModelConfig's home) imports this module
    from toymi.model.transformer import ModelConfig

# Beyond this many table rows the direct projection is the cheaper choice for any sensible batch.
MAX_TABLE_ROWS = 4096

# Interventions at these sites change layer 0's attention input, which the tables assume is embed + pos_embed.
UPSTREAM_SITES = frozenset({"embed", "pos_embed", "resid_pre"})


def tables_possible(config: ModelConfig) -> bool:
    """Whether layer 0 can read q, k, v from tables at all: no norm before it and a toy vocabulary."""
    return not config.has_norm and config.d_vocab + config.n_ctx <= MAX_TABLE_ROWS


def plain_weights(attn: Attention) -> bool:
    """Whether the attention's input weights are plain arrays, which the tables are built from, rather than objects
    standing in for them (SPD's masked weights, with a mask per position, which no per-token table can hold)."""
    return not any(hasattr(w, "heads_in") for w in (attn.W_Q, attn.W_K, attn.W_V))


def tables_apply(config: ModelConfig, intervened_sites: frozenset[str]) -> bool:
    """Whether the tables alone give layer 0's q, k, v: possible, and nothing changed the input they assume. When
    something may have, the forward pass checks (`tables_if_unchanged`) instead of dropping them."""
    return tables_possible(config) and not (intervened_sites & UPSTREAM_SITES)


def tables_if_unchanged(attn: Attention, qkv: tuple[Array, Array, Array], attn_in: Float[Array, "pos d_model"],
                        table_input: Float[Array, "pos d_model"], query_positions: tuple[int, ...] | None,
                        ) -> tuple[Array, Array, Array]:
    """Layer 0's q, k, v when an intervention upstream may have changed its input from the `embed + pos_embed`
    (`table_input`) the tables were built for.

    If `attn_in` is that input bit for bit, the tables plus the projection of the change (exactly 0): the output is
    bit-identical to the clean run's, and gradients with respect to the input still flow (attribution patching
    takes them here). Otherwise the direct projection of `attn_in`, the same numbers as a model without tables.
    """
    unchanged = jnp.all(attn_in == table_input)
    change = attn.project(attn_in - table_input, query_positions, with_bias=False)
    direct = attn.project(attn_in, query_positions)
    return tuple(jnp.where(unchanged, table + delta, projected)
                 for table, delta, projected in zip(qkv, change, direct))


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
