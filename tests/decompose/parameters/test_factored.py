"""SPD's masked matrices kept factored (`Subcomponents.masked`) give the same outputs and gradients as the masked
weights materialised per example (the implementation before them)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.components import FactoredMatrix, init_overlapping, init_subcomponents
from toymi.decompose.parameters.importance import init_importance
from toymi.decompose.parameters.losses import SPDParams, masked_output, mse, stochastic_masks
from toymi.decompose.parameters.targets import model_targets
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.model.tms import TMS
from toymi.model.tms import TMSConfig


def _dense_masked_output(model, targets, params, x, masks):
    return masked_output(model, targets, params, x, masks, dense=True)


def _setup(name):
    if name == "tms_id":
        model = eqx.tree_at(lambda m: m.b, TMS(TMSConfig(5, 2, hidden_identity=True), jax.random.PRNGKey(0)),
                            -0.1 * jnp.ones(5))
    else:
        model = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=12, d_mlp=4, n_layers=2, in_bias=True),
                            jax.random.PRNGKey(1))
    targets = model_targets(model)

    @eqx.filter_jit  # one compile rather than op-by-op dispatch
    def draw(model):
        keys = jax.random.split(jax.random.PRNGKey(5), 2 * len(targets))
        comps = tuple(init_subcomponents(*t.get(model).shape, 7, k) for t, k in zip(targets, keys[::2]))
        params = SPDParams(comps, tuple(init_importance(7, k) for k in keys[1::2]))
        x = jax.random.uniform(jax.random.PRNGKey(2), (9, model.config.n_features))
        g = [jax.random.uniform(k, (9, 7)) for k in jax.random.split(jax.random.PRNGKey(3), len(targets))]
        return params, x, stochastic_masks(jax.random.PRNGKey(4), g)

    return model, targets, *draw(model)


@pytest.mark.parametrize("name", ["tms_id", "resid"])
@pytest.mark.parametrize("which", [pytest.param("all", marks=pytest.mark.slow), "one"])  # "all": ~10 s on 2 cores
def test_factored_masks_equal_materialised_weights(name, which):
    model, targets, params, x, masks = _setup(name)
    if which == "one":  # layerwise: one matrix masked, the rest the model's own (a LayerStack mixes both)
        masks = [m if i == len(masks) - 1 else None for i, m in enumerate(masks)]
    want = eqx.filter_jit(_dense_masked_output)(model, targets, params, x, masks)
    got = eqx.filter_jit(masked_output)(model, targets, params, x, masks)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(want - jax.vmap(model)(x)).max()) > 1e-3  # the masks do change the output

    @eqx.filter_jit
    def grads(fn, params):
        return jax.grad(lambda p: mse(fn(model, targets, p, x, masks), jnp.zeros_like(want)))(params)

    for a, b in zip(jax.tree.leaves(grads(masked_output, params)),
                    jax.tree.leaves(grads(_dense_masked_output, params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_factored_matrix_algebra_and_shape_errors():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    f = FactoredMatrix(jax.random.normal(k1, (3, 4)), jax.random.normal(k2, (5, 4)), jnp.asarray([1.0, 0.0, .5, 2.]))
    M = f.dense()
    assert f.shape == M.shape == (3, 5) and f.T.shape == (5, 3)
    a, b = jax.random.normal(k3, (5,)), jax.random.normal(k4, (2, 3))
    np.testing.assert_allclose(f @ a, M @ a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f @ jnp.stack([a, 2 * a], 1), M @ jnp.stack([a, 2 * a], 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b @ f, b @ M, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f.T @ b[0], M.T @ b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(FactoredMatrix(f.U, f.V).dense(), f.U @ f.V.T, rtol=1e-6)
    with pytest.raises(ValueError, match="cannot multiply"):
        f @ b[0]
    with pytest.raises(ValueError, match="cannot multiply"):
        a @ f


def test_overlapping_start_scales_unit_factors_by_their_overlap_with_the_weights():
    # the SPD paper's code's start: unit-norm columns, each U_c then times U_cᵀ W V_c (computed here by hand)
    weight = jax.random.normal(jax.random.PRNGKey(1), (3, 5))
    comps = init_overlapping(weight, 7, jax.random.PRNGKey(2))
    np.testing.assert_allclose(np.linalg.norm(comps.V, axis=0), 1.0, rtol=1e-6)
    u = np.asarray(comps.U) / np.linalg.norm(comps.U, axis=0)
    overlap = np.array([u[:, c] @ np.asarray(weight) @ np.asarray(comps.V[:, c]) for c in range(7)])
    np.testing.assert_allclose(np.linalg.norm(comps.U, axis=0), np.abs(overlap), rtol=1e-5)
    np.testing.assert_allclose(np.sign(np.einsum("oc,oi,ic->c", comps.U, weight, comps.V)), np.sign(overlap) ** 2)
