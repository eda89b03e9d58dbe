"""A transformer's decomposable matrices: per layer, attention's `W_Q`, `W_K`, `W_V`, `W_O` (every head at once) and
the MLP's `W_in`, `W_out`, each as one `Target` (`targets.py`).

Each attention matrix is decomposed whole, as the reference code decomposes `q_proj` ... `o_proj`: `W_Q[l]`
`[head, d_model, d_head]` is the `[head·d_head, d_model]` matrix that maps the attention's input to every head's
query at once, and `W_O[l]` is `[d_model, head·d_head]`, reading every head's `z`. Whether a subcomponent belongs to
one head is then a finding, not an assumption: its `U_c` (or, for `W_O`, its `V_c`) either lies in one head's
`d_head` block or spreads over several (`truths_induction.head_shares`).

What each matrix reads (the causal-importance input `V_cᵀ a`, at every position): `W_Q`, `W_K`, `W_V` the
attention's input (`resid_pre`, through `ln1` when the model normalises), `W_O` the flattened `z`, `W_in` the MLP's
input (`mlp_input`) and `W_out` `mlp_post`.

Masks are per position (`[pos, C]`: every position's importance is its own), so a masked weight differs from
position to position and is substituted factored (`components.FactoredMatrix`, whose products broadcast the
per-position mask), wrapped for attention in `HeadsView`, which multiplies as the model's per-head einsums do
(`toymi.model.attention.heads_in` / `heads_out`). A dense matrix (`Subcomponents.weight()`) is put back in the model's
own layout.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.decompose.parameters.components import FactoredMatrix
from toymi.model.layer_stack import layer_of, set_layer
from toymi.model.norm import normalized


class HeadsView(eqx.Module):
    """A factored `[head·d_head, d_model]` (queries, keys, values) or `[d_model, head·d_head]` (`W_O`) matrix as the
    per-head weight it stands in for."""

    matrix: FactoredMatrix
    n_heads: int = eqx.field(static=True)

    def heads_in(self, x: Float[Array, "pos d_model"]) -> Float[Array, "pos head d_head"]:
        out = x @ self.matrix.T  # [pos, head·d_head]: U (m ⊙ Vᵀ x) per position
        return out.reshape(*out.shape[:-1], self.n_heads, -1)

    def heads_out(self, z: Float[Array, "pos head d_head"]) -> Float[Array, "pos head d_model"]:
        """Each head's share `U (m ⊙ V_hᵀ z_h)` of `U (m ⊙ Vᵀ z)`: summed over heads, the matrix times `z`."""
        m = self.matrix
        V = m.V.reshape(self.n_heads, -1, m.V.shape[-1])  # [head, d_head, C]
        inner = jnp.einsum("qhe,hec->qhc", z, V)
        if m.mask is not None:
            inner = inner * (m.mask[..., None, :] if m.mask.ndim == 2 else m.mask)
        return inner @ m.U.T


def _attn_input(model, acts, layer: int) -> Array:
    norm = None if model.blocks.ln1 is None else layer_of(model.blocks.ln1, layer)
    return normalized(norm, acts["resid_pre", layer])


def _heads_in_target(name: str, layer: int, n_heads: int):
    """`W_Q` / `W_K` / `W_V` of `layer` as `[head·d_head, d_model]`."""
    get_stack = lambda m: getattr(m.blocks.attn, name)  # noqa: E731

    def get(m):
        W = get_stack(m)[layer]  # [head, d_model, d_head]
        return W.transpose(0, 2, 1).reshape(-1, W.shape[1])

    def put(m, M):
        W = get_stack(m)
        new = (HeadsView(M, n_heads) if isinstance(M, FactoredMatrix)
               else M.reshape(n_heads, -1, M.shape[1]).transpose(0, 2, 1))
        return eqx.tree_at(get_stack, m, set_layer(W, layer, new))

    return get, put


def _w_o_target(layer: int, n_heads: int):
    """`W_O` of `layer` as `[d_model, head·d_head]`."""
    get_stack = lambda m: m.blocks.attn.W_O  # noqa: E731

    def get(m):
        W = get_stack(m)[layer]  # [head, d_head, d_model]
        return W.reshape(-1, W.shape[-1]).T

    def put(m, M):
        new = HeadsView(M, n_heads) if isinstance(M, FactoredMatrix) else M.T.reshape(n_heads, -1, M.shape[0])
        return eqx.tree_at(get_stack, m, set_layer(get_stack(m), layer, new))

    return get, put


def _mlp_target(name: str, layer: int):
    """The MLP's `W_in` (`x @ W_in`) or `W_out` of `layer`, transposed to `out = M @ a`."""
    get_stack = lambda m: getattr(m.blocks.mlp, name)  # noqa: E731
    return (lambda m: get_stack(m)[layer].T,
            lambda m, M: eqx.tree_at(get_stack, m, set_layer(get_stack(m), layer, M.T)))


def transformer_targets(model, target_cls) -> list:
    """Every decomposable matrix of `model`, layer by layer (`target_cls` is `targets.Target`)."""
    h, out = model.config.n_heads, []
    for l in range(model.config.n_layers):
        for name in ("W_Q", "W_K", "W_V"):
            out.append(target_cls(f"{name}.{l}", "resid_pre", l, *_heads_in_target(name, l, h),
                                  read=lambda m, acts, l=l: _attn_input(m, acts, l)))
        out.append(target_cls(f"W_O.{l}", "z", l, *_w_o_target(l, h),
                              read=lambda m, acts, l=l: acts["z", l].reshape(*acts["z", l].shape[:-2], -1)))
        if model.blocks.mlp is not None:
            out.append(target_cls(f"W_in.{l}", model.mlp_input_site(), l, *_mlp_target("W_in", l),
                                  read=lambda m, acts, l=l: m.mlp_input(acts, l)))
            out.append(target_cls(f"W_out.{l}", "mlp_post", l, *_mlp_target("W_out", l)))
    return out
