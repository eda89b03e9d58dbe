"""The MLP: W_in, an activation function, W_out."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model import init
from toymi.model.hooks import Hooks

if TYPE_CHECKING:  # annotations only: transformer.py (ModelConfig's home) imports this module
    from toymi.model.transformer import ModelConfig


def solu(x: Array) -> Array:
    """Softmax linear unit, x * softmax(x) over the neurons (Elhage et al. 2022), without the trailing LayerNorm."""
    return x * jax.nn.softmax(x, axis=-1)


def gelu_fast(x: Array) -> Array:
    """TransformerLens's `gelu_fast`: the tanh approximation with its constants written out (equal to `gelu_new` up
    to rounding)."""
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


# Names mean what they mean in TransformerLens: `gelu` is the exact erf form (torch's F.gelu), `gelu_new` GPT-2's
# tanh approximation.
ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": gelu_fast,
    "solu": solu,
}


class MLP(eqx.Module):
    W_in: Float[Array, "d_model d_mlp"]
    b_in: Float[Array, " d_mlp"]
    W_out: Float[Array, "d_mlp d_model"]
    b_out: Float[Array, " d_model"]
    act_fn: str = eqx.field(static=True)

    def __init__(self, config: ModelConfig, key: PRNGKeyArray):
        k_in, k_out = init.split(key)
        d, m = config.d_model, config.d_mlp
        self.W_in = init.normal(k_in, (d, m), config.init_scale / math.sqrt(d))
        self.W_out = init.normal(k_out, (m, d), config.init_scale / math.sqrt(m))
        self.b_in = init.zeros(m)
        self.b_out = init.zeros(d)
        self.act_fn = config.act_fn

    def __call__(self, x: Float[Array, "pos d_model"], hooks: Hooks, layer: int) -> Float[Array, "pos d_model"]:
        pre = hooks("mlp_pre", layer, x @ self.W_in + self.b_in)
        post = hooks("mlp_post", layer, ACTIVATIONS[self.act_fn](pre))
        return hooks("mlp_out", layer, post @ self.W_out + self.b_out)
