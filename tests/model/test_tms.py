import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi import ConfigError, patch, steer, zero_ablate
from toymi.model.registry import build_model, config_class
from toymi.model.sites import available_sites
from toymi.model.activations import Activations
from toymi.model.tms import TMS, TMSConfig

CONFIG = TMSConfig(n_features=6, d_hidden=3)


@pytest.fixture
def model():
    m = TMS(CONFIG, jax.random.PRNGKey(0))
    # a bias with both signs, so ReLU(b) is neither b nor 0
    return eqx.tree_at(lambda m: m.b, m, jnp.array([0.3, -0.2, 0.1, -0.4, 0.5, 0.0]))


@pytest.fixture
def x():
    return jax.random.uniform(jax.random.PRNGKey(1), (4, 6))


@pytest.mark.slow
def test_output_is_the_formula_and_capture_works_under_jit_and_vmap(model, x):
    @jax.jit
    def one(v):
        return model.run(v, capture="all")

    out, acts = jax.vmap(one)(x)
    expected = jax.nn.relu(x @ model.W.T @ model.W + model.b)  # ReLU(Wᵀ W x + b), row by row
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert isinstance(acts, Activations) and acts.names() == ("input", "hidden", "output_pre", "output")
    np.testing.assert_allclose(acts["input"], x)
    np.testing.assert_allclose(acts["hidden"], x @ model.W.T, atol=1e-6)
    np.testing.assert_allclose(acts["output_pre"], x @ model.W.T @ model.W + model.b, atol=1e-6)
    np.testing.assert_allclose(acts["output"], out)
    # `run` on a batch equals vmapping single examples
    batched, batched_acts = model.run(x, capture=["hidden"])
    np.testing.assert_allclose(batched, out, atol=1e-6)
    assert batched_acts.names() == ("hidden",) and batched_acts["hidden"].shape == (4, 3)
    np.testing.assert_allclose(model(x), out, atol=1e-6)


def test_patching_every_site_with_its_own_values_is_a_no_op(model, x):
    clean, acts = model.run(x[0], capture="all")
    for site in available_sites(CONFIG):
        patched, _ = model.run(x[0], interventions=[patch(site, acts[site])])
        np.testing.assert_allclose(patched, clean, atol=1e-6, err_msg=site)


def test_patching_hidden_from_another_input_reproduces_that_input(model, x):
    _, other = model.run(x[1], capture=["hidden"])
    patched, _ = model.run(x[0], interventions=[patch("hidden", other["hidden"])])
    np.testing.assert_allclose(patched, model(x[1]), atol=1e-6)
    assert float(jnp.abs(model(x[0]) - model(x[1])).max()) > 1e-3  # so the patch did something


def test_zero_ablating_hidden_leaves_relu_of_the_bias(model, x):
    out, _ = model.run(x, interventions=[zero_ablate("hidden")])
    np.testing.assert_allclose(out, np.broadcast_to(jax.nn.relu(model.b), (4, 6)), atol=1e-7)


def test_steering_hidden_moves_output_pre_by_w_transpose_direction(model, x):
    direction = jnp.array([1.0, -2.0, 0.5])
    _, base = model.run(x[0], capture=["output_pre"])
    _, steered = model.run(x[0], capture=["output_pre"], interventions=[steer("hidden", direction, 0.5)])
    np.testing.assert_allclose(steered["output_pre"] - base["output_pre"], 0.5 * direction @ model.W, atol=1e-6)


@pytest.mark.parametrize("trainable", [False, True])
def test_hidden_identity_variant_at_init_equals_the_plain_model(model, x, trainable):
    config = TMSConfig(n_features=6, d_hidden=3, hidden_identity=True, hidden_identity_trainable=trainable)
    plain = TMS(CONFIG, jax.random.PRNGKey(0))
    variant = TMS(config, jax.random.PRNGKey(0))
    out, acts = variant.run(x, capture="all")
    np.testing.assert_allclose(out, plain(x), atol=1e-6)
    np.testing.assert_allclose(acts["hidden_identity_out"], acts["hidden"], atol=1e-6)
    np.testing.assert_array_equal(variant.W_hidden, np.eye(3))
    assert "hidden_identity_out" in available_sites(config)
    # only the trainable variant has the identity among its parameters (so weight decay cannot move a fixed one)
    n_params = len(jax.tree.leaves(eqx.filter(variant, eqx.is_inexact_array)))
    assert n_params == (3 if trainable else 2)


@pytest.mark.slow
def test_trainable_hidden_identity_receives_gradients(x):
    config = TMSConfig(n_features=6, d_hidden=3, hidden_identity=True, hidden_identity_trainable=True)
    variant = TMS(config, jax.random.PRNGKey(0))
    grads = eqx.filter_grad(lambda m: jnp.sum((m(x) - x) ** 2))(variant)
    assert float(jnp.abs(grads.W_hidden_trained).max()) > 0


def test_plain_model_has_no_hidden_identity_site(model, x):
    with pytest.raises(KeyError, match="unknown site 'hidden_identity_out'.*valid sites are: input, hidden"):
        model.run(x, capture=["hidden_identity_out"])
    with pytest.raises(KeyError, match="unknown site 'hidden_identity_out'"):
        model.run(x, interventions=[zero_ablate("hidden_identity_out")])
    with pytest.raises(AttributeError, match="no hidden identity layer"):
        model.W_hidden  # noqa: B018


def test_lookup_of_an_uncaptured_site_says_how_to_capture_it(model, x):
    _, acts = model.run(x, capture=["hidden"])
    with pytest.raises(KeyError, match=r"site 'output' was not captured \(captured: hidden\)"):
        acts["output"]


@pytest.mark.parametrize("build,message", [
    (lambda: zero_ablate("hidden", positions=0), "has no position axis"),
    (lambda: zero_ablate("output", heads=[1]), "has no head axis"),
    (lambda: zero_ablate("hidden", layer=0), "not per-layer"),
])
def test_transformer_only_selections_are_rejected_on_tms_sites(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"with 6 features, got shape \(5,\)"):
        model(jnp.zeros(5))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 6\)"):
        model(jnp.zeros((2, 3, 6)))
    with pytest.raises(TypeError, match="floating point"):
        model(jnp.zeros(6, jnp.int32))
    with pytest.raises(ValueError, match="does not broadcast to site 'hidden'"):
        model.run(jnp.zeros(6), interventions=[patch("hidden", jnp.zeros((2, 3)))])


def test_bad_configs_list_every_problem():
    with pytest.raises(ConfigError) as info:
        TMSConfig(n_features=0, d_hidden=2.5, hidden_identity="yes", init_scale=-1.0)
    message = str(info.value)
    for expected in ("n_features must be a positive integer, got 0", "d_hidden must be a positive integer, got 2.5",
                     "hidden_identity must be true or false, got 'yes'", "init_scale must be a positive number"):
        assert expected in message
    with pytest.raises(ConfigError, match="hidden_identity_trainable = true needs hidden_identity = true"):
        TMSConfig(n_features=5, d_hidden=2, hidden_identity_trainable=True)
    with pytest.raises(ConfigError, match=r"unknown tms model config keys \['d_model'\]"):
        TMSConfig.from_dict({"n_features": 5, "d_hidden": 2, "d_model": 3})
    with pytest.raises(ConfigError, match=r"needs \['d_hidden'\]"):
        TMSConfig.from_dict({"n_features": 5})


def test_registered_as_a_model_kind():
    config = config_class("tms").from_dict({"n_features": 5, "d_hidden": 2, "hidden_identity": True})
    model = build_model(config, jax.random.PRNGKey(0))
    assert isinstance(model, TMS) and model.W.shape == (2, 5) and model.b.shape == (5,)
    assert TMSConfig.from_dict(config.to_dict()) == config
