"""`toymi.train.state`: a fresh training state."""

import equinox as eqx
import jax
import numpy as np
import optax

import transformer_models
from compile_log import compiled
from toymi.train.state import init_optimizer_state


def test_the_optimizer_state_is_built_by_one_program_and_is_the_eager_one(caplog):
    model = transformer_models.model(n_layers=2, d_mlp=20)  # weight shapes no other test's optimiser has seen
    optimizer = optax.adamw(1e-3)
    with compiled(caplog) as compiles:
        state = init_optimizer_state(optimizer, model)
    assert len(compiles) == 1, compiles  # eagerly: one per distinct weight shape
    eager = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    assert jax.tree.structure(state) == jax.tree.structure(eager)
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(eager)):
        assert (got.shape, got.dtype, got.weak_type) == (want.shape, want.dtype, want.weak_type)
        np.testing.assert_array_equal(got, want)
