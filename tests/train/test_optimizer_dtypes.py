"""AdamW's numbers are float32 leaves of the optimiser state however they were written (0 or 0.0)."""

import jax
import jax.numpy as jnp

from toymi.train.optimizer import adamw, hyperparams


def test_integer_hyperparameters_give_the_same_state_as_floats():
    params = {"w": jnp.ones(3)}
    ints = adamw(steps=10, lr=1, weight_decay=0, beta1=0, beta2=1, eps=0).init(params)
    floats = adamw(steps=10, lr=1.0, weight_decay=0.0, beta1=0.0, beta2=1.0, eps=0.0).init(params)
    # same structure and dtypes: one compiled training step serves both (`--set train.weight_decay=0` used to make
    # an int32 leaf, and with it another program)
    assert jax.tree.structure(ints) == jax.tree.structure(floats)
    assert jax.tree.map(lambda x: x.dtype, ints) == jax.tree.map(lambda x: x.dtype, floats)
    assert all(v.dtype == jnp.float32 for v in hyperparams(ints).values())
