"""Small random transformers for the attribution-graph tests (tests/circuits): every bias non-zero."""

import jax
import jax.numpy as jnp
import numpy as np

from toymi.host import to_device
from toymi.model import init
from toymi.model.transformer import ModelConfig, Transformer

TOKENS = jnp.array([1, 4, 2, 7, 3, 0])


def model(n_layers=1, normalization="none", act_fn="relu", d_mlp=12, seed=1) -> Transformer:
    """A small transformer with every bias non-zero (so constants are tested too)."""
    cfg = ModelConfig(n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=d_mlp, d_vocab=9, n_ctx=6,
                      act_fn=act_fn, normalization=normalization)
    m = Transformer(cfg, jax.random.PRNGKey(seed))
    leaves, tree = jax.tree.flatten(m)
    keys = init.split_keys(jax.random.PRNGKey(seed + 100), len(leaves))
    # the draws and the sum on the host (`toymi.model.init`: the same numbers, no program compiled per weight shape)
    return jax.tree.unflatten(tree, [to_device(np.asarray(leaf) + np.asarray(init.normal(k, leaf.shape, 0.1)))
                                     for leaf, k in zip(leaves, keys)])
