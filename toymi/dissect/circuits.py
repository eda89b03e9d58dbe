"""Attention circuits from the weights alone (Elhage et al. 2021): composition scores, full OV/QK circuits, copying.

In TransformerLens's row-vector convention a head reads `x` and writes `x @ W_OV` with `W_OV = W_V W_O`
(`[d_model, d_model]`, rank `d_head`) and scores query `x_q` against key `x_k` with `x_q W_QK x_kᵀ`,
`W_QK = W_Q W_Kᵀ`. A head B in a later layer composes with an earlier head A when A's output lands where B reads:

- Q-composition: in B's queries, `W_OV^A W_QK^B`;
- K-composition: in B's keys, `W_OV^A (W_QK^B)ᵀ`;
- V-composition: in B's values, `W_OV^A W_OV^B`;

and the composition score is `||W_A W_B||_F / (||W_A||_F ||W_B||_F)`, as in the paper and TransformerLens's
`all_composition_scores`. Every matrix here has rank `d_head`, so norms and eigenvalues are computed from
`[d_head, d_head]` factors rather than `[d_model, d_model]` products: exact, and cheap for every pair of heads at once.

Weights only: biases, and normalisation (unless folded into the weights first), are ignored, as in TransformerLens.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

CompositionKind = Literal["Q", "K", "V"]


def factored_norm(left: Float[Array, "*b d e"], right: Float[Array, "*b e f"]) -> Float[Array, "*b"]:
    """`||left @ right||_F` without forming the product: `sqrt(tr((leftᵀ left)(right rightᵀ)))`."""
    return jnp.sqrt(jnp.einsum("...ij,...ji->...", _gram_cols(left), _gram_rows(right)))


def composition_scores(model, kind: CompositionKind) -> Float[Array, "layer_a head_a layer_b head_b"]:
    """Composition score of every earlier head A (output) into every later head B (Q, K or V input).

    **Arguments:**

    - `model`: a `Transformer`.
    - `kind`: `"Q"`, `"K"` or `"V"`: which of B's inputs A's output feeds.

    **Returns:** `[layer_a, head_a, layer_b, head_b]` scores in [0, 1]; NaN where `layer_a >= layer_b` (no
    composition is possible). For scale: independent random matrices in `d_model` dimensions score about
    `1 / sqrt(d_model)`, whatever their rank.
    """
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V', got {kind!r}")
    W_Q, W_K, W_V, W_O = model.W_Q, model.W_K, model.W_V, model.W_O  # [layer, head, ...]
    # A = L_a R_a (OV) and B = L_b R_b, all [d_model, d_head] @ [d_head, d_model].
    left_a, right_a = W_V, W_O
    left_b, right_b = {
        "Q": (W_Q, jnp.swapaxes(W_K, -1, -2)),
        "K": (W_K, jnp.swapaxes(W_Q, -1, -2)),
        "V": (W_V, W_O),
    }[kind]
    # ||L_a (R_a L_b) R_b||²_F = tr(Mᵀ G_a M H_b), M = R_a L_b, G_a = L_aᵀ L_a, H_b = R_b R_bᵀ.
    middle = jnp.einsum("ahed,bgdf->ahbgef", right_a, left_b)  # [layer_a, head_a, layer_b, head_b, e, e]
    gram_a, gram_b = _gram_cols(left_a), _gram_rows(right_b)  # [layer, head, e, e]
    squared = jnp.einsum("ahbgef,aheE,ahbgEF,bgFf->ahbg", middle, gram_a, middle, gram_b)
    product_norm = jnp.sqrt(jnp.maximum(squared, 0.0))
    norm_a = factored_norm(left_a, right_a)  # [layer, head]
    norm_b = factored_norm(left_b, right_b)
    scores = product_norm / (norm_a[:, :, None, None] * norm_b[None, None, :, :])
    n_layers = W_Q.shape[0]
    earlier = np.arange(n_layers)[:, None] < np.arange(n_layers)[None, :]  # [layer_a, layer_b]
    return jnp.where(earlier[:, None, :, None], scores, jnp.nan)


def ov_circuit(model, tokens: ArrayLike | None = None) -> Float[Array, "layer head token d_vocab_out"]:
    """Each head's full OV circuit `W_E W_V W_O W_U`: how attending to a token (row) moves each logit (column),
    along the direct path from the embedding through this head alone to the unembedding.

    `tokens` selects input tokens (rows of `W_E`; default all), e.g. `jnp.arange(d_vocab_out)` to drop a BOS token.
    """
    embed = _embedding_rows(model, tokens)
    return jnp.einsum("td,lhde,lhef,fv->lhtv", embed, model.W_V, model.W_O, model.W_U)


def qk_circuit(model, tokens: ArrayLike | None = None) -> Float[Array, "layer head query_token key_token"]:
    """Each head's full QK circuit `W_E W_Q W_Kᵀ W_Eᵀ`: the attention score between a query token (row) and a key
    token (column) along the direct path from the embedding (before the `1/sqrt(d_head)` scaling)."""
    embed = _embedding_rows(model, tokens)
    return jnp.einsum("qd,lhde,lhke,tk->lhqt", embed, model.W_Q, model.W_K, embed)


def positional_qk_circuit(model) -> Float[Array, "layer head query_pos key_pos"]:
    """`W_pos W_Q W_Kᵀ W_posᵀ`: the attention score between query and key positions along the direct path from the
    positional embedding; a previous-token head shows a bright first sub-diagonal."""
    if model.W_pos is None:
        raise ValueError("this model has no learned positional embedding (positional_embedding = 'none')")
    return jnp.einsum("qd,lhde,lhke,tk->lhqt", model.W_pos, model.W_Q, model.W_K, model.W_pos)


def eigenvalue_score(matrix: Float[Array, "*b n n"]) -> Float[Array, "*b"]:
    """`sum(λ) / sum(|λ|)` over the eigenvalues of each square matrix, in [-1, 1] (Elhage et al.'s copying score).

    1 when every eigenvalue is positive real (the map reinforces what it reads: copying), -1 when every one is
    negative (suppression), near 0 for a random map. `sum(λ)` is the trace, so it is real.
    """
    matrix = jnp.asarray(matrix)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"eigenvalue_score needs square matrices [..., n, n], got shape {matrix.shape}")
    eigenvalues = jnp.linalg.eigvals(matrix)
    return jnp.trace(matrix, axis1=-2, axis2=-1) / jnp.abs(eigenvalues).sum(-1)


def ov_copying_scores(model, tokens: ArrayLike | None = None) -> Float[Array, "layer head"]:
    """The copying score (`eigenvalue_score`) of every head's full OV circuit.

    The OV circuit `E V O U` (`[token, token]`, rank `d_head`) has the same non-zero eigenvalues as `O U E V`
    (`[d_head, d_head]`), so that small matrix is what is diagonalised. Input token `i` must be output token `i`:
    pass `tokens` when the model reads more tokens than it predicts (e.g. `jnp.arange(d_vocab_out)` to drop a BOS).
    """
    embed = _embedding_rows(model, tokens)
    if embed.shape[0] != model.config.d_vocab_out:
        raise ValueError(
            f"the OV circuit must be square for eigenvalues: {embed.shape[0]} input tokens but d_vocab_out = "
            f"{model.config.d_vocab_out}; pass tokens=jnp.arange({model.config.d_vocab_out}) (or the token ids "
            f"matching each output)"
        )
    cyclic = jnp.einsum("lhed,dv,vm,lhmf->lhef", model.W_O, model.W_U, embed, model.W_V)
    return eigenvalue_score(cyclic)


def _embedding_rows(model, tokens: ArrayLike | None) -> Float[Array, "token d_model"]:
    if tokens is None:
        return model.W_E
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D array of token ids, got {tokens.dtype} of shape {tokens.shape}")
    if ((tokens < 0) | (tokens >= model.config.d_vocab)).any():
        raise ValueError(f"tokens must be in [0, d_vocab={model.config.d_vocab}), got {tokens.min()}..{tokens.max()}")
    return model.W_E[tokens]


def _gram_cols(left: Float[Array, "*b d e"]) -> Float[Array, "*b e e"]:
    return jnp.einsum("...de,...dE->...eE", left, left)


def _gram_rows(right: Float[Array, "*b e d"]) -> Float[Array, "*b e e"]:
    return jnp.einsum("...ed,...Ed->...eE", right, right)
