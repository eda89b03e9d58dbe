"""The 2026 options of SPD's losses: adversarial (PGD) reconstruction and the frequency-minimality term."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.importance import init_importance
from toymi.decompose.parameters.losses import (
    SPDParams, importance_minimality, masked_output, mse, pgd_reconstruction,
)
from toymi.decompose.parameters.pgd import PGDSettings, adversarial_masks, adversarial_sources
from toymi.decompose.parameters.spd import SPDConfig, spd_hyper, stack_spd_hypers, train_spd
from toymi.decompose.parameters.targets import model_targets
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig


def _setup():
    model = ResidualMLP(ResidualMLPConfig(n_features=5, d_model=8, d_mlp=3, in_bias=True), jax.random.PRNGKey(0))
    targets = model_targets(model)
    keys = jax.random.split(jax.random.PRNGKey(1), 2 * len(targets))
    comps = tuple(Subcomponents(0.5 * jax.random.normal(k, (t.get(model).shape[0], 4)),
                                0.5 * jax.random.normal(jax.random.fold_in(k, 1), (t.get(model).shape[1], 4)))
                  for t, k in zip(targets, keys[::2]))
    params = SPDParams(comps, tuple(init_importance(4, k) for k in keys[1::2]))
    x = jax.random.uniform(jax.random.PRNGKey(2), (6, 5))
    g = [jax.random.uniform(jax.random.PRNGKey(3 + i), (6, 4)) for i in range(len(targets))]
    return model, targets, params, x, jax.vmap(model)(x), g


def test_pgd_masks_are_worse_than_random_ones_and_start_where_told():
    model, targets, params, x, target, g = _setup()

    def loss(sources, p=params):
        return mse(masked_output(model, targets, p, x, adversarial_masks(g, sources)), target)

    @jax.jit  # one program: eager dispatch of the search is slow
    def measured(params):
        keys = jax.random.split(jax.random.PRNGKey(9), len(g))
        start = [jax.random.uniform(k, gi.shape) for k, gi in zip(keys, g)]
        found = adversarial_sources(loss, g, jax.random.PRNGKey(9), PGDSettings(steps=5, step_size=0.1))
        value = pgd_reconstruction(model, targets, params, x, target, g, jax.random.PRNGKey(9),
                                   PGDSettings(steps=5, step_size=0.1))
        grad = jax.grad(lambda p: pgd_reconstruction(model, targets, p, x, target, g, jax.random.PRNGKey(9),
                                                     PGDSettings(steps=2)))(params)
        ones = adversarial_sources(loss, g, jax.random.PRNGKey(0), PGDSettings(steps=0, init="ones"))
        shared = adversarial_sources(loss, g, jax.random.PRNGKey(0), PGDSettings(steps=2, shared=True))
        return loss(start), loss(found), found, value, grad, adversarial_masks(g, ones)[0], shared[0]

    at_start, at_found, found, value, grad, ones_mask, shared = measured(params)
    assert all(float(s.min()) >= 0 and float(s.max()) <= 1 for s in found)
    assert float(at_found) > float(at_start)  # the ascent found worse masks than its random start
    assert float(value) == pytest.approx(float(at_found), rel=1e-5)
    np.testing.assert_array_equal(ones_mask, jnp.ones_like(g[0]))  # sources of 1: every mask 1
    assert shared.shape == (1, 4)
    # the search is held fixed: the term's gradient reaches the subcomponents only through the masked model
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(grad))
    with pytest.raises(ValueError, match="PGD needs"):
        PGDSettings(init="middle")


def test_frequency_minimality_adds_beta_f_to_the_p2():
    g = [jnp.asarray([[0.0, 1.0, 0.5], [1.0, 1.0, 0.5]])]  # f = (0.5, 1, 0.5) at p = 1
    assert float(importance_minimality(g, jnp.asarray(1.0))) == pytest.approx(2.0)
    assert float(importance_minimality(g, jnp.asarray(1.0), beta=2.0, p2=2.0)) == pytest.approx(
        2.0 + 2.0 * (0.25 + 1.0 + 0.25))


@pytest.mark.slow
def test_spd_trains_with_the_2026_options():
    model, targets, params, x, target, g = _setup()
    cfg = SPDConfig(C=4, steps=3, batch_size=8, pgd_coef=1.0, pgd_steps=2, frequency_coef=0.5)
    run = train_spd(model, lambda key, n: jax.random.uniform(key, (n, 5)), cfg,
                    stack_spd_hypers([spd_hyper(1e-3)] * 2), jnp.asarray([0, 1]))
    assert set(run.losses) == {"faithfulness", "recon", "recon_layerwise", "importance", "recon_pgd", "total"}
    assert run.losses["recon_pgd"].shape == (2, 3) and bool(jnp.all(jnp.isfinite(run.losses["total"])))
    assert SPDConfig(C=4).pgd() is None  # off by default: the 2025 losses alone
