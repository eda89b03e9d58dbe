"""A toymi `Transformer`'s weights by dotted name, as the converters to other libraries read and write them."""

from __future__ import annotations

import equinox as eqx
import jax

from toymi.model.transformer import Transformer

BLOCK_WEIGHTS = ("ln1.w", "ln1.b", "ln2.w", "ln2.b", "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.b_Q",
                 "attn.b_K", "attn.b_V", "attn.b_O", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out")


def block_leaves(model: Transformer) -> dict[str, jax.Array]:
    """The stacked block weights `model` has, by dotted name (`attn.W_Q` is `[layer, head, d_model, d_head]`);
    those its config leaves out (no MLP, no norm, no biases) are absent."""
    out = {}
    for name in BLOCK_WEIGHTS:
        part, leaf = name.split(".")
        module = getattr(model.blocks, part)
        value = None if module is None else getattr(module, leaf)
        if value is not None:
            out[name] = value
    return out


def get_dotted(obj, dotted: str):
    """`obj.a.b.c` for `"a.b.c"`."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def with_weights(model: Transformer, new: dict[str, jax.Array]) -> Transformer:
    """`model` with each dotted-name weight in `new` replaced."""
    names = list(new)
    return eqx.tree_at(lambda m: [get_dotted(m, n) for n in names], model, [new[n] for n in names])
