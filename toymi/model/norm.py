"""Pre-norm normalisation: LayerNorm or RMSNorm, returning the scale so it can be captured (TransformerLens's
`hook_scale`), which direct logit attribution and LayerNorm folding need."""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.model import init

if TYPE_CHECKING:  # annotations only: transformer.py (ModelConfig's home) imports this module
    from toymi.model.transformer import ModelConfig


class Norm(eqx.Module):
    w: Float[Array, " d_model"]
    b: Float[Array, " d_model"] | None  # None for RMSNorm
    eps: float = eqx.field(static=True)

    def __init__(self, config: ModelConfig):
        self.w = init.ones(config.d_model)
        self.b = init.zeros(config.d_model) if config.normalization == "layernorm" else None
        self.eps = config.norm_eps

    def __call__(self, x: Float[Array, "pos d_model"]) -> tuple[Float[Array, "pos d_model"], Float[Array, " pos"]]:
        centred, scale = self.centre_and_scale(x)
        return self.apply(centred, scale), scale

    def centre_and_scale(
        self, x: Float[Array, "*lead d_model"]
    ) -> tuple[Float[Array, "*lead d_model"], Float[Array, " *lead"]]:
        """The input centred (LayerNorm; RMSNorm leaves it) and its per-position scale, kept apart so that the scale
        site can be patched before it divides (LayerNorm removal fixes it to a constant, as TransformerLens's
        `hook_scale` allows)."""
        if self.b is not None:  # LayerNorm centres; RMSNorm does not
            x = x - x.mean(-1, keepdims=True)
        return x, jnp.sqrt((x * x).mean(-1) + self.eps)  # [pos]

    def apply(
        self, centred: Float[Array, "*lead d_model"], scale: Float[Array, " *lead"]
    ) -> Float[Array, "*lead d_model"]:
        """`centred / scale * w + b`."""
        out = centred / scale[..., None] * self.w
        return out + self.b if self.b is not None else out


def normalized(norm: Norm | None, x: Float[Array, "*lead d_model"]) -> Float[Array, "*lead d_model"]:
    """`norm(x)`'s output over any leading axes, or `x` itself without a norm. No sites are passed: for code that
    recomputes a piece of the model from its weights (circuit graphs, single-edge runs), not for the hooked forward."""
    return x if norm is None else norm.apply(*norm.centre_and_scale(x))
