"""Stacked per-layer weights, and one layer of them.

Transformer blocks keep every weight stacked on a leading `layer` axis (`model.blocks.attn.W_Q` is
`[layer, head, d_model, d_head]`). A weight that is not one array for every layer — SPD puts a masked, factored matrix
in one layer and keeps the others (`toymi.decompose.parameters.targets`) — is a `LayerStack`: a tuple indexed by layer
as the array was. `layer_of` takes layer `l` of a tree of stacked weights, either kind.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np


class LayerStack(eqx.Module):
    """A stacked `[layer, ...]` weight as a tuple of per-layer entries (arrays or objects that multiply like them)."""

    layers: tuple

    def __getitem__(self, layer: int):
        return self.layers[layer]


def _is_stack(x) -> bool:
    return isinstance(x, LayerStack)


def layer_of(stacked, layer: int):
    """Layer `layer` of every stacked weight in the tree `stacked` (a `LayerStack` gives its own entry)."""
    return jax.tree.map(lambda w: w[layer], stacked, is_leaf=_is_stack)


def set_layer(stack, layer: int, M):
    """`stack` with layer `layer` replaced by `M`: `.at[].set` while everything is an array, else a `LayerStack`."""
    if not _is_stack(stack) and isinstance(M, (jax.Array, np.ndarray)):
        return stack.at[layer].set(M)
    layers = list(stack.layers) if _is_stack(stack) else [stack[i] for i in range(stack.shape[0])]
    layers[layer] = M
    return LayerStack(tuple(layers))
