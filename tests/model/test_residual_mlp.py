import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi import patch, steer, zero_ablate
from toymi.errors import ConfigError
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig, fixed_embedding
from toymi.model.sites import check_site
from toymi.experiment.spec import Spec
from toymi.experiment import make_optimizer
from toymi.train import init_state, make_train_chunk

CONFIG = ResidualMLPConfig(n_features=6, d_model=24, d_mlp=5, n_layers=2, in_bias=True, out_bias=True)


@pytest.fixture
def model():
    m = ResidualMLP(CONFIG, jax.random.PRNGKey(0))
    # non-zero biases, so the formula below checks they are used
    return eqx.tree_at(lambda m: (m.b_in, m.b_out), m, (0.1 * jnp.ones_like(m.b_in), 0.05 * jnp.ones_like(m.b_out)))


@pytest.fixture
def x():
    return jax.random.uniform(jax.random.PRNGKey(1), (4, 6), minval=-1, maxval=1)


def by_hand(model, x):
    """The documented formula, written out independently of `forward`."""
    r = x @ model.W_E
    for layer in range(model.config.n_layers):
        r = r + jax.nn.relu(r @ model.W_in[layer] + model.b_in[layer]) @ model.W_out[layer] + model.b_out[layer]
    return r @ model.W_E.T


def test_fixed_embedding_has_unit_rows_and_depends_only_on_the_seed():
    e = fixed_embedding(6, 24, 3)
    np.testing.assert_allclose(jnp.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(e, fixed_embedding(6, 24, 3))
    assert not np.allclose(e, fixed_embedding(6, 24, 4))
    rebuilt = np.random.default_rng(3).standard_normal((6, 24))
    np.testing.assert_allclose(e, rebuilt / np.linalg.norm(rebuilt, axis=1, keepdims=True), rtol=1e-6)


def test_orthogonal_embedding_passes_features_through_exactly():
    e = np.asarray(fixed_embedding(6, 24, 3, "orthogonal"), np.float64)
    np.testing.assert_allclose(e @ e.T, np.eye(6), atol=1e-6)  # W_E W_Eᵀ = I: no label mixing
    noisy = np.asarray(fixed_embedding(6, 24, 3), np.float64)
    assert np.abs(noisy @ noisy.T - np.eye(6)).max() > 0.05  # the default embedding does mix
    np.testing.assert_array_equal(fixed_embedding(6, 24, 3, "orthogonal"), e.astype(np.float32))
    m = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=24, d_mlp=5, embed_seed=3, embedding="orthogonal"),
                    jax.random.PRNGKey(0))
    np.testing.assert_allclose(m.W_E, e, atol=1e-7)
    with pytest.raises(ConfigError, match="n_features <= d_model"):
        ResidualMLPConfig(n_features=30, d_model=24, embedding="orthogonal")
    with pytest.raises(ConfigError, match="embedding must be one of"):
        ResidualMLPConfig(n_features=6, d_model=24, embedding="identity")
    with pytest.raises(ValueError, match="embedding kind"):
        fixed_embedding(30, 24, 0, "orthogonal")


@pytest.mark.slow
def test_output_equals_the_formula_and_capture_works_under_jit_and_vmap(model, x):
    @jax.jit
    def traced(m, x):
        return jax.vmap(lambda v: m.run(v, capture=["mlp_post", "resid_post", "output"]))(x)

    out, acts = traced(model, x)
    np.testing.assert_allclose(out, by_hand(model, x), atol=1e-5)
    np.testing.assert_allclose(acts["output"], out)
    assert acts["mlp_post"].shape == (4, 2, 5)  # [batch, layer, d_mlp]
    assert acts["resid_post", 1].shape == (4, 24)
    assert float(acts["mlp_post"].min()) >= 0.0  # after the ReLU
    np.testing.assert_allclose(acts["resid_post", 1] @ model.W_E.T, out, atol=1e-5)
    assert "embed" not in acts
    with pytest.raises(KeyError, match="not captured"):
        acts["embed"]


@pytest.mark.slow
def test_patching_every_site_with_its_own_values_is_a_no_op(model, x):
    clean, acts = model.run(x[0], capture="all")
    assert acts.names() == ("embed", "resid_pre", "mlp_pre", "mlp_post", "mlp_out", "resid_post", "output")
    for site in acts.names():
        ivs = ([patch(site, acts[site, layer], layer=layer) for layer in range(2)] if model.sites[site].per_layer
               else [patch(site, acts[site])])
        np.testing.assert_allclose(model.run(x[0], interventions=ivs)[0], clean, atol=1e-6, err_msg=site)


@pytest.mark.slow
def test_zero_ablating_the_neurons_leaves_the_residual_read_out(x):
    m = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=24, d_mlp=5, n_layers=2), jax.random.PRNGKey(0))
    ablated, _ = m.run(x, interventions=[zero_ablate("mlp_post")])
    # without biases the read-out is exactly x W_E W_Eᵀ: x plus the embedding's interference
    np.testing.assert_allclose(ablated, x @ m.W_E @ m.W_E.T, atol=1e-6)
    assert float(jnp.abs(ablated - m(x)).max()) > 1e-3
    assert float(jnp.abs(ablated - x).max()) > 1e-3  # 6 random directions in 24 dims are not orthogonal


def test_ablating_one_layer_equals_zeroing_its_output_weights(model, x):
    ablated, _ = model.run(x, interventions=[zero_ablate("mlp_out", layer=1)])
    surgery = eqx.tree_at(lambda m: (m.W_out, m.b_out), model,
                          (model.W_out.at[1].set(0.0), model.b_out.at[1].set(0.0)))
    np.testing.assert_allclose(ablated, surgery(x), atol=1e-6)


def test_steering_the_output(model, x):
    direction = jnp.arange(6.0)
    steered, _ = model.run(x, interventions=[steer("output", direction, 2.0)])
    np.testing.assert_allclose(steered - model(x), 2.0 * jnp.broadcast_to(direction, (4, 6)), atol=1e-5)


def test_a_neuron_sweep_is_one_vmap(model, x):
    _, acts = model.run(x[0], capture=["mlp_post"])

    def ablate(n):
        return model.run(x[0], interventions=[patch("mlp_post", acts["mlp_post", 0].at[n].set(0.0), layer=0)])[0]

    swept = jax.jit(jax.vmap(ablate))(jnp.arange(5))
    surgery = eqx.tree_at(lambda m: m.W_out, model, model.W_out.at[0, 2].set(0.0))
    np.testing.assert_allclose(swept[2], surgery(x[0]), atol=1e-5)


@pytest.mark.slow
def test_the_embedding_stays_fixed_through_training_with_weight_decay():
    spec = Spec.from_dict({"task": {"name": "compressed_computation", "n_features": 8, "feature_probability": 0.2,
                                    "batch_size": 64, "n_eval": 64},
                           "model": {"d_model": 16, "d_mlp": 4},
                           "train": {"steps": 20, "lr": 0.1, "weight_decay": 1.0, "eval_every": 20}})
    optimizer = make_optimizer(spec.train)
    state = init_state(spec.model, optimizer, seed=0)
    trained, _ = make_train_chunk(optimizer, 20)(state, spec.build_task())
    assert not np.allclose(trained.model.W_in, state.model.W_in)  # training did happen
    # with lr * weight_decay = 0.1, a decayed parameter would shrink by 0.9 ** 20
    np.testing.assert_array_equal(trained.model.W_E, fixed_embedding(8, 16, 0))
    np.testing.assert_allclose(jnp.linalg.norm(trained.model.W_E, axis=1), 1.0, atol=1e-6)
    params = jax.tree.leaves(eqx.filter(trained.model, eqx.is_inexact_array))
    assert all(p.shape != (8, 16) and p.shape != (16, 8) for p in params)  # the optimiser never sees W_E


@pytest.mark.slow
def test_learned_unembedding_starts_at_the_embedding_transpose_and_trains():
    m = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=24, d_mlp=5, unembed="learned"), jax.random.PRNGKey(0))
    np.testing.assert_array_equal(m.W_U, m.W_E.T)
    assert m.b_U.shape == (6,)
    other = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=24, d_mlp=5, n_outputs=3, unembed="learned"),
                        jax.random.PRNGKey(0))
    assert other(jnp.ones(6)).shape == (3,)


def test_position_and_head_masks_are_rejected_on_feature_sites(model, x):
    with pytest.raises(ValueError, match="no 'pos' axis"):
        model.run(x[0], interventions=[zero_ablate("mlp_post", layer=0, positions=[0])])
    with pytest.raises(KeyError, match="unknown site 'attn_out'"):
        model.run(x[0], interventions=[zero_ablate("attn_out", layer=0)])
    assert check_site("output", CONFIG).axes == ("feature",)


class TestBadInputs:
    def test_config_lists_every_problem(self):
        with pytest.raises(ConfigError) as info:
            ResidualMLPConfig(n_features=0, d_mlp=-1, unembed="tied", init_scale=0)
        for text in ("n_features must be a positive integer", "d_mlp must be", "unembed must be one of",
                     "init_scale must be"):
            assert text in str(info.value)

    def test_fixed_unembedding_needs_one_output_per_feature(self):
        with pytest.raises(ConfigError, match='set unembed = "learned"'):
            ResidualMLPConfig(n_features=6, n_outputs=3)

    def test_unknown_keys(self):
        with pytest.raises(ConfigError, match=r"unknown residual_mlp config keys \['d_vocab'\]"):
            ResidualMLPConfig.from_dict({"n_features": 4, "d_vocab": 3})

    def test_wrong_input_width(self, model):
        with pytest.raises(ValueError, match="n_features=6, got shape"):
            model(jnp.zeros((2, 5)))

    def test_config_round_trips(self):
        assert ResidualMLPConfig.from_dict(CONFIG.to_dict()) == CONFIG
