import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.importance import ImportanceMLPs
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.truths_compressed import feature_importance, neuron_agreement, score_compressed
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.tasks.compressed_computation import naive_model


def _step_importance(C: int) -> ImportanceMLPs:
    """Γ_c(s) = gelu(20 s − 10): importance 1 for an inner activation of 1, about 0 for one below 0.3."""
    w1 = jnp.zeros((C, 16)).at[:, 0].set(20.0)
    w2 = jnp.zeros((C, 16)).at[:, 0].set(1.0)
    return ImportanceMLPs(w1=w1, b1=jnp.zeros((C, 16)).at[:, 0].set(-10.0), w2=w2, b2=jnp.zeros(C))


@pytest.mark.slow
def test_compressed_truth_counts_features_with_a_W_in_subcomponent_of_their_own():
    config = ResidualMLPConfig(n_features=6, d_model=400, d_mlp=4)
    model = ResidualMLP(config, jax.random.PRNGKey(0))
    W_E = np.asarray(model.W_E)  # nearly orthogonal unit rows in 400 dims
    reads = W_E[[0, 0, 1, 2, 3, 4, 5]].T  # W_in subcomponents 0 and 1 both read feature 0
    w_in = Subcomponents(U=jnp.ones((4, 7)), V=jnp.asarray(reads))
    neurons = np.maximum(W_E @ np.asarray(model.W_in[0]), 0)  # [feature, d_mlp]: each feature's neuron activity
    # W_out subcomponents reading neuron 0 and neuron 1, scaled so that the feature driving each most reads 1
    w_out = Subcomponents(U=jnp.ones((400, 2)), V=jnp.asarray(np.eye(4)[:, :2] / neurons.max(axis=0)[:2]))
    params = SPDParams((w_in, w_out), (_step_importance(7), _step_importance(2)))
    ci = feature_importance(model, params)
    assert ci["W_in.0"].shape == (6, 7) and ci["W_out.0"].shape == (6, 2)
    np.testing.assert_allclose(ci["W_in.0"][:, 2:], np.eye(6)[:, 1:], atol=1e-3)
    scores = score_compressed(model, params)
    assert scores["own_fraction.0"] == pytest.approx(5 / 6)  # feature 0 has two subcomponents, the rest one each
    assert scores["own_fraction"] == scores["own_fraction.0"]
    assert scores["w_out_used.0"] == 2.0


def test_neuron_agreement_is_one_for_the_mechanism_and_zero_without_its_W_out():
    """The naive model on a clean embedding (neuron n computes ReLU(x_n)) decomposed one subcomponent per neuron:
    `W_in`'s reads feature n's direction and writes neuron n, `W_out`'s reads neuron n and writes its row. Feature n
    alone makes exactly its own two important, and the masked model's neuron effects are the model's."""
    config = ResidualMLPConfig(n_features=5, d_model=40, d_mlp=5, embedding="orthogonal")
    model = naive_model(ResidualMLP(config, jax.random.PRNGKey(0)))
    w_in = Subcomponents(U=jnp.eye(5), V=model.W_in[0])  # Σ_c e_c W_in[:, c]ᵀ = W_inᵀ
    w_out = Subcomponents(U=model.W_out[0].T, V=jnp.eye(5))  # Σ_c W_out[c] e_cᵀ = W_outᵀ
    params = SPDParams((w_in, w_out), (_step_importance(5), _step_importance(5)))
    ci = feature_importance(model, params)
    np.testing.assert_allclose(ci["W_in.0"], np.eye(5), atol=1e-3)
    assert neuron_agreement(model, params) == {"neuron_agreement": pytest.approx(1.0), "neurons_used_match": 1.0}
    scores = score_compressed(model, params)
    assert scores["own_fraction_any_layer"] == scores["own_fraction"] == 1.0 and scores["neuron_agreement"] > 0.999
    # W_out's importances never fire: the decomposition says no feature needs W_out, so no neuron matters
    never = eqx.tree_at(lambda g: g.w2, _step_importance(5), jnp.zeros((5, 16)))  # Γ = 0: importance 0
    silent = SPDParams((w_in, w_out), (_step_importance(5), never))
    assert neuron_agreement(model, silent) == {"neuron_agreement": 0.0, "neurons_used_match": 0.0}
