"""The causal-grid engine on model kinds other than the transformer: each kind declares its grid sites."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.dissect.ablation import ablate_layers
from toymi.dissect.patching import patchable_sites, patching_grid, path_patching, run_metric
from toymi.model.interventions import patch, zero_ablate
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.model.tms import TMS
from toymi.model.tms import TMSConfig


@functools.cache
def _residual_mlp():
    config = ResidualMLPConfig(n_features=5, d_model=8, d_mlp=4, n_layers=2, in_bias=True)
    model = ResidualMLP(config, jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    clean, corrupted = (jax.random.uniform(k, (3, 5), minval=-1, maxval=1) for k in keys)
    return model, clean, corrupted


def metric(out):
    return out[..., 0].mean()


@pytest.mark.slow  # builds a residual MLP: seconds on a busy CPU
def test_residual_mlp_declares_its_grid_sites_and_refuses_others():
    model, clean, corrupted = _residual_mlp()
    assert set(patchable_sites(model)) == {"resid_pre", "mlp_pre", "mlp_post", "mlp_out", "resid_post"}
    with pytest.raises(ValueError, match="cannot be patched in a grid of a residual_mlp model; use one of: resid_pre"):
        patching_grid(model, clean, corrupted, metric, "embed", ("layer",), direction="noising")
    with pytest.raises(ValueError, match="path patching follows heads; a residual_mlp model has none"):
        path_patching(model, clean, corrupted, metric)
    ablated = ablate_layers(model, clean, metric)  # the blocks it has: MLPs only
    assert list(ablated) == ["mlp_out"]
    expected = [metric(model.run(clean, interventions=[zero_ablate("mlp_out", layer=layer)])[0]) for layer in (0, 1)]
    np.testing.assert_allclose(ablated["mlp_out"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("site, over", [("mlp_post", ("layer", "neuron")), ("resid_pre", ("layer",))])
def test_residual_mlp_grid_equals_patching_each_cell_by_hand(site, over):
    model, clean, corrupted = _residual_mlp()
    grid = np.asarray(patching_grid(model, clean, corrupted, metric, site, over, direction="noising"))
    reference = np.asarray(patching_grid(model, clean, corrupted, metric, site, over, reuse_clean=False,
                                         direction="noising"))
    _, source = model.run(corrupted, capture=[site])
    _, base = model.run(clean, capture=[site])
    expected = np.zeros(grid.shape)
    for layer in range(2):
        if over == ("layer",):
            value = source[site, layer]
            out = jax.vmap(lambda x, v: model.run(x, interventions=[patch(site, v, layer=layer)])[0])(clean, value)
            expected[layer] = metric(out)
            continue
        for n in range(4):
            value = base[site, layer].at[:, n].set(source[site, layer][:, n])
            out = jax.vmap(lambda x, v: model.run(x, interventions=[patch(site, v, layer=layer)])[0])(clean, value)
            expected[layer, n] = metric(out)
    np.testing.assert_allclose(grid, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reference, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(grid, float(run_metric(model, clean, metric)))  # the patches do something


def test_a_kind_without_grid_sites_is_a_clear_error():
    tms = TMS(TMSConfig(n_features=4, d_hidden=2), jax.random.PRNGKey(0))
    x = jnp.ones((2, 4))
    with pytest.raises(ValueError, match="tms model has no per-layer site"):
        patching_grid(tms, x, x, metric, "hidden", ("layer",), direction="noising")
