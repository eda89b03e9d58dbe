"""Bad indices, tokens and intervention lists are errors, eagerly and under jit: never a run that silently ignores
them (issue 13's silent cases)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi import apply_function, steer, zero_ablate
from toymi.errors import CheckFailed


@pytest.fixture(scope="module")
def model():
    config = toymi.ModelConfig(d_vocab=11, n_ctx=4, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    return toymi.Transformer(config, jax.random.PRNGKey(0))


TOKENS = jnp.array([[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("kwargs", [dict(layer=2), dict(layer=-3), dict(heads=2), dict(heads=-3),
                                    dict(positions=3), dict(positions=-4)])
@pytest.mark.slow
def test_out_of_range_indices_raise_eagerly(model, kwargs):
    with pytest.raises(IndexError, match="out of range for an axis of size"):
        model.run(TOKENS, interventions=[zero_ablate("z", **kwargs)])


def test_function_intervention_layer_out_of_range(model):
    with pytest.raises(IndexError, match="out of range for a model with 2 layers"):
        model.run(TOKENS, interventions=[apply_function("z", lambda z: 0 * z, layer=7)])


@pytest.mark.parametrize("name, value", [("layer", 2), ("heads", 2), ("heads", -3), ("positions", 3),
                                         ("positions", -4)])
@pytest.mark.slow
def test_out_of_range_traced_indices_fail_under_jit(model, name, value):
    grid = toymi.jit(jax.vmap(lambda i: model.run(TOKENS, interventions=[zero_ablate("z", **{name: i})])[0]))
    grid(jnp.array([0, 1]))  # in range: runs
    with pytest.raises(CheckFailed, match=r"out of range for an axis of size \d \(valid indices"):
        grid(jnp.array([0, value]))


def test_traced_check_also_stops_plain_jax_jit(model):
    run = jax.jit(lambda h: model.run(TOKENS, interventions=[zero_ablate("z", heads=h)])[0])
    with pytest.raises(Exception, match="head index of the 'z' intervention is out of range"):
        jax.block_until_ready(run(4))


@pytest.mark.slow
def test_negative_layers_count_from_the_end_like_activation_lookup(model):
    def out(**kwargs):
        return model.run(TOKENS, interventions=[zero_ablate("z", **kwargs)])[0]
    np.testing.assert_array_equal(out(layer=-1), out(layer=1))
    np.testing.assert_array_equal(out(layer=-2), out(layer=0))
    assert not np.allclose(out(layer=0), out(layer=1))
    both = model.run(TOKENS, interventions=[zero_ablate("z", layer=0), zero_ablate("z", layer=1)])[0]
    np.testing.assert_array_equal(out(layer=None), both)  # None: every layer
    _, acts = model.run(TOKENS, capture=["resid_pre"])
    np.testing.assert_array_equal(acts["resid_pre", -1], acts["resid_pre", 1])
    fn_last = model.run(TOKENS, interventions=[apply_function("z", lambda z: 0 * z, layer=-1)])[0]
    np.testing.assert_allclose(fn_last, out(layer=1), atol=1e-6)


@pytest.mark.parametrize("layer", [0.7, 1.0, True, np.float32(0)])
def test_non_integer_layer_is_a_type_error(layer):
    with pytest.raises(TypeError, match="layer must be an integer"):
        zero_ablate("z", layer=layer)
    with pytest.raises(TypeError, match="layer"):
        apply_function("z", lambda z: z, layer=layer)


def test_float_head_indices_are_a_type_error():
    with pytest.raises(TypeError, match="integer indices or a boolean mask"):
        steer("z", jnp.ones(8), heads=0.5)


@pytest.mark.parametrize("tokens, error, match", [
    (np.array([[2**40, 1, 2]]), ValueError, "token id 1099511627776 .* out of range"),  # int64 would wrap to 0
    (np.array([2**32 + 5]), ValueError, "token id 4294967301 .* out of range"),  # ... and this to 5
    (jnp.zeros((0,), jnp.int32), ValueError, "at least one position"),
    (jnp.zeros((2, 0), jnp.int32), ValueError, "at least one position"),
    ("3 5 =", TypeError, "integer array of token ids, got str"),
    ([1.5, 2.0], TypeError, "tokens must be integers"),
    (None, TypeError, "integer array of token ids"),
])
def test_bad_tokens(model, tokens, error, match):
    with pytest.raises(error, match=match):
        model(tokens)


def test_out_of_range_token_under_toymi_jit_is_one_line(model):
    with pytest.raises(CheckFailed, match=r"^token id out of range \[0, 11\)$"):
        toymi.jit(model)(jnp.array([1, 11]))


@pytest.mark.parametrize("interventions, match", [
    (["z"], "built with patch, zero_ablate"),
    ([None], "built with patch, zero_ablate"),
    (zero_ablate("z"), "must be a list"),
])
def test_interventions_must_be_a_list_of_interventions(model, interventions, match):
    with pytest.raises(TypeError, match=match):
        model.run(TOKENS, interventions=interventions)


def test_forward_refuses_a_site_the_model_lacks():
    """`forward` (the path grids and splices take) refuses an intervention at a site this model does not have,
    instead of running without it."""
    config = toymi.ModelConfig(d_vocab=11, n_ctx=4, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=0)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    with pytest.raises(KeyError, match="unknown sites \\['mlp_out'\\]"):
        model.forward(jnp.array([1, 2, 3]), interventions=[zero_ablate("mlp_out", layer=0)])
