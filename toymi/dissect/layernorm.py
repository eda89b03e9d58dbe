"""Weight rewrites that leave a transformer's outputs unchanged: fold normalisation weights, centre what writes to the
residual stream, centre the unembedding. Each is model -> model (`eqx.tree_at`), with TransformerLens's semantics
(`HookedTransformer.fold_layer_norm`, `center_writing_weights`, `center_unembed`).

Why: after folding, a norm is a pure "centre and divide by the scale", so the residual stream is read by the weights
alone (direct logit attribution reads `W_U` with no per-feature rescaling); after centring, the residual stream has
no component along the all-ones direction that every LayerNorm throws away anyway, so its norms and PCA are not
dominated by a direction nobody reads.

Exactness:

- `fold_ln`: a norm's output `n(x) * w + b` feeds a linear map `W, b_W`, so `(n(x) * w + b) @ W + b_W`
  `= n(x) @ (w[:, None] * W) + (b @ W + b_W)`. For LayerNorm `n(x)` is mean-zero, so the reading weights' mean over
  `d_model` multiplies zero and is removed too (`center_weights`, TransformerLens's default).
- `center_writing_weights`: only exact when every reader of the residual stream is a LayerNorm that centres (every
  one in a `normalization = "layernorm"` model); an error otherwise.
- `center_unembed`: logits shift by the same constant in every class, which softmax ignores.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.model.transformer import Transformer


def fold_ln(model: Transformer, *, center_weights: bool = True) -> Transformer:
    """Fold every norm's weight (and LayerNorm's bias) into the weights that read it; the norms become `w = 1`,
    `b = 0` (pure centring and scaling, TransformerLens's `LNPre`). Logits are unchanged up to float rounding.

    **Arguments:**

    - `model`: a `Transformer` with `normalization = "layernorm"` or `"rmsnorm"`.
    - `center_weights`: for LayerNorm, also subtract each reading matrix's mean over `d_model` (exact, since the
      folded norm's output is mean-zero). Ignored for RMSNorm, whose output is not.

    **Returns:** the rewritten model: `W_Q, W_K, W_V, b_Q, b_K, b_V` (from `ln1`), `W_in, b_in` (from `ln2`),
    `W_U, b_U` (from `ln_final`) changed; norm weights 1 and biases 0.
    """
    _check_transformer(model, "fold_ln")
    if not model.config.has_norm:
        raise ValueError("fold_ln: this model has no normalisation (normalization = 'none'); there is nothing to fold")
    centre = center_weights and model.config.normalization == "layernorm"
    attn, ln1 = model.blocks.attn, model.blocks.ln1

    def fold_heads(W: Float[Array, "layer head d_model d_head"], b: Float[Array, "layer head d_head"]):
        new_b = b if ln1.b is None else b + jnp.einsum("ld,lhde->lhe", ln1.b, W)
        new_W = ln1.w[:, None, :, None] * W
        return (new_W - new_W.mean(2, keepdims=True) if centre else new_W), new_b

    (W_Q, b_Q), (W_K, b_K), (W_V, b_V) = (fold_heads(attn.W_Q, attn.b_Q), fold_heads(attn.W_K, attn.b_K),
                                          fold_heads(attn.W_V, attn.b_V))
    new = eqx.tree_at(
        lambda m: (m.blocks.attn.W_Q, m.blocks.attn.b_Q, m.blocks.attn.W_K, m.blocks.attn.b_K,
                   m.blocks.attn.W_V, m.blocks.attn.b_V),
        model, (W_Q, b_Q, W_K, b_K, W_V, b_V))
    new = eqx.tree_at(lambda m: m.blocks.ln1, new, _unit(ln1))

    if model.blocks.mlp is not None:
        mlp, ln2 = model.blocks.mlp, model.blocks.ln2
        b_in = mlp.b_in if ln2.b is None else mlp.b_in + jnp.einsum("ld,ldm->lm", ln2.b, mlp.W_in)
        W_in = ln2.w[:, :, None] * mlp.W_in
        W_in = W_in - W_in.mean(1, keepdims=True) if centre else W_in
        new = eqx.tree_at(lambda m: (m.blocks.mlp.W_in, m.blocks.mlp.b_in), new, (W_in, b_in))
        new = eqx.tree_at(lambda m: m.blocks.ln2, new, _unit(ln2))

    lnf = model.ln_final
    b_U = model.b_U if lnf.b is None else model.b_U + lnf.b @ model.W_U
    W_U = lnf.w[:, None] * model.W_U
    W_U = W_U - W_U.mean(0, keepdims=True) if centre else W_U
    new = eqx.tree_at(lambda m: (m.W_U, m.b_U), new, (W_U, b_U))
    return eqx.tree_at(lambda m: m.ln_final, new, _unit(lnf))


def center_writing_weights(model: Transformer) -> Transformer:
    """Subtract the mean over `d_model` of everything that writes to the residual stream: `W_E`, `W_pos`, `W_O`,
    `b_O`, `W_out`, `b_out`. Logits are unchanged because every reader is a centring LayerNorm; the residual stream
    then has zero mean over `d_model` at every site.

    **Arguments:**

    - `model`: a `Transformer` with `normalization = "layernorm"` (an error otherwise: without a centring norm
      before every reader the mean component matters and removing it changes the outputs).

    **Returns:** the rewritten model.
    """
    _check_transformer(model, "center_writing_weights")
    if model.config.normalization != "layernorm":
        raise ValueError(
            f"center_writing_weights is only exact when every reader of the residual stream is a LayerNorm that "
            f"centres; this model has normalization = {model.config.normalization!r}"
        )
    centred = lambda w: w - w.mean(-1, keepdims=True)  # noqa: E731  d_model is the last axis of every writer
    new = eqx.tree_at(lambda m: m.W_E, model, centred(model.W_E))
    if model.W_pos is not None:
        new = eqx.tree_at(lambda m: m.W_pos, new, centred(model.W_pos))
    attn = model.blocks.attn
    new = eqx.tree_at(lambda m: (m.blocks.attn.W_O, m.blocks.attn.b_O), new, (centred(attn.W_O), centred(attn.b_O)))
    if model.blocks.mlp is not None:
        mlp = model.blocks.mlp
        new = eqx.tree_at(lambda m: (m.blocks.mlp.W_out, m.blocks.mlp.b_out), new,
                          (centred(mlp.W_out), centred(mlp.b_out)))
    return new


def center_unembed(model: Transformer) -> Transformer:
    """Subtract the mean over the output classes of `W_U` and `b_U`. Every position's logits shift by one constant,
    so log-probabilities are unchanged (any model, normalised or not).

    **Returns:** the rewritten model.
    """
    _check_transformer(model, "center_unembed")
    return eqx.tree_at(lambda m: (m.W_U, m.b_U), model,
                       (model.W_U - model.W_U.mean(-1, keepdims=True), model.b_U - model.b_U.mean()))


def _unit(norm):
    """The same norm with weight 1 and (LayerNorm) bias 0."""
    new = eqx.tree_at(lambda n: n.w, norm, jnp.ones_like(norm.w))
    return new if norm.b is None else eqx.tree_at(lambda n: n.b, new, jnp.zeros_like(norm.b))


def _check_transformer(model, what: str) -> None:
    if not isinstance(model, Transformer):
        raise TypeError(f"{what} rewrites a toymi Transformer's weights; got {type(model).__name__}")
