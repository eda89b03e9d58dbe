"""Small random transformers for the attribution-graph tests (tests/circuits): every bias non-zero."""

import jax
import jax.numpy as jnp

from toymi.model.transformer import ModelConfig, Transformer

TOKENS = jnp.array([1, 4, 2, 7, 3, 0])


def model(n_layers=1, normalization="none", act_fn="relu", d_mlp=12, seed=1) -> Transformer:
    """A small transformer with every bias non-zero (so constants are tested too)."""
    cfg = ModelConfig(n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=d_mlp, d_vocab=9, n_ctx=6,
                      act_fn=act_fn, normalization=normalization)
    m = Transformer(cfg, jax.random.PRNGKey(seed))
    leaves, tree = jax.tree.flatten(m)
    keys = jax.random.split(jax.random.PRNGKey(seed + 100), len(leaves))
    return jax.tree.unflatten(tree, [leaf + 0.1 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])
