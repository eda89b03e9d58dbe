"""One transformer layer (`Block`): `resid + attn(ln1(resid))`, then `resid + mlp(ln2(resid))`, every step named.

`Transformer` (in `transformer.py`) stores its blocks stacked over layers and slices one out per layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model import init
from toymi.model.attention import Attention
from toymi.model.embedding_tables import tables_if_unchanged
from toymi.model.hooks import Hooks
from toymi.model.mlp import MLP
from toymi.model.norm import Norm
from toymi.model.positions import take_positions

if TYPE_CHECKING:  # annotations only: transformer.py (ModelConfig's home) imports this module
    from toymi.model.transformer import ModelConfig


class Block(eqx.Module):
    """One transformer layer: `resid + attn(ln1(resid))`, then `resid + mlp(ln2(resid))`."""

    attn: Attention
    mlp: MLP | None
    ln1: Norm | None
    ln2: Norm | None

    def __init__(self, config: ModelConfig, key: PRNGKeyArray):
        k_attn, k_mlp = init.split(key)
        self.attn = Attention(config, k_attn)
        self.mlp = None if config.attn_only else MLP(config, k_mlp)
        self.ln1 = Norm(config) if config.has_norm else None
        self.ln2 = Norm(config) if config.has_norm and not config.attn_only else None

    def __call__(
        self, resid: Float[Array, "pos d_model"], hooks: Hooks, layer: int, query_positions: tuple[int, ...] | None = None,
        qkv: tuple[Array, Array, Array] | None = None, qkv_input: Array | None = None,
    ) -> Float[Array, "pos d_model"]:
        """With `query_positions`, the block's output (and everything after attention) covers only those positions;
        `qkv` gives the attention's projections precomputed (layer 0's from embedding tables) for the input
        `qkv_input` when that is given (else for whatever arrives); they are used only if the input is that one."""
        resid = hooks("resid_pre", layer, resid)
        attn_in = normed(self.ln1, resid, hooks, "ln1_scale", layer)
        if qkv is not None and qkv_input is not None:
            qkv = tables_if_unchanged(self.attn, qkv, attn_in, qkv_input, query_positions)
        attn_out = self.attn(attn_in, hooks, layer, query_positions, qkv)
        resid = take_positions(resid, query_positions) + attn_out
        if self.mlp is not None:
            resid = hooks("resid_mid", layer, resid)
            resid = resid + self.mlp(normed(self.ln2, resid, hooks, "ln2_scale", layer), hooks, layer)
        return hooks("resid_post", layer, resid)


def normed(norm: Norm | None, x: Array, hooks: Hooks, scale_site: str, layer: int | None) -> Array:
    """`norm(x)` (or `x` without a norm), its scale passed through the site `scale_site`."""
    if norm is None:
        return x
    # The scale goes through its site before dividing, so an intervention there (a fixed scale) flows downstream.
    centred, scale = norm.centre_and_scale(x)
    return norm.apply(centred, hooks(scale_site, layer, scale))
