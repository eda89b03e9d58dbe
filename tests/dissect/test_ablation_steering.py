"""Ablation sweeps and steering vectors against single runs and known answers (on an attention-only model, whose
grids compile in about a second)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi import mean_ablate, steer, zero_ablate
from toymi.dissect.ablation import ablate_heads, ablate_layers, ablation_sweep
from toymi.dissect.metrics import LogitDiff
from toymi.dissect.patching import patching_grid, run_metric
from toymi.dissect.steering import steering_sweep, steering_vector

CONFIG = dict(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_head=8)


@pytest.fixture(scope="module")
def model():
    """Attention-only without normalisation: cheap to compile, and linear after the last layer."""
    return toymi.Transformer(toymi.ModelConfig(**CONFIG, d_mlp=0, init_scale=2.0), jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def tokens():
    return jax.random.randint(jax.random.PRNGKey(1), (4, 8), 0, 11)


@pytest.fixture(scope="module")
def metric():
    return LogitDiff(jnp.array([1, 2, 3, 4]), jnp.array([5, 6, 7, 8]))


@eqx.filter_jit
def _batch_metric(model, tokens, metric, interventions):
    return metric(model.run(tokens, interventions=interventions)[0])


def batch_metric(model, tokens, metric, interventions):
    """Reference: one plain (compiled) run of the batch under `interventions`."""
    return float(_batch_metric(model, tokens, metric, interventions))


@pytest.mark.slow
def test_zero_ablation_sweep_equals_single_ablations(model, tokens, metric):
    heads = ablate_heads(model, tokens, metric)
    assert heads.shape == (2, 2)
    for layer in range(2):
        for head in range(2):
            expected = batch_metric(model, tokens, metric, [zero_ablate("z", layer=layer, heads=head)])
            np.testing.assert_allclose(heads[layer, head], expected, atol=1e-5)
    assert float(jnp.abs(heads - float(run_metric(model, tokens, metric))).min()) > 1e-4


@pytest.mark.slow
def test_layer_ablation_sweep_equals_single_ablations(tokens, metric):
    model = toymi.Transformer(toymi.ModelConfig(**CONFIG, d_mlp=32), jax.random.PRNGKey(0))
    layers = ablate_layers(model, tokens, metric)
    assert set(layers) == {"attn_out", "mlp_out"}
    for site, grid in layers.items():
        assert grid.shape == (2,)
        for layer in range(2):
            expected = batch_metric(model, tokens, metric, [zero_ablate(site, layer=layer)])
            np.testing.assert_allclose(grid[layer], expected, atol=1e-5)


@pytest.mark.slow
def test_layer_ablation_of_an_attention_only_model(model, tokens, metric):
    layers = ablate_layers(model, tokens, metric)
    assert set(layers) == {"attn_out"}  # no MLP to ablate
    np.testing.assert_allclose(layers["attn_out"][1], batch_metric(model, tokens, metric,
                                                                   [zero_ablate("attn_out", layer=1)]), atol=1e-5)


@pytest.mark.slow
def test_mean_ablation_uses_the_batch_mean(model, tokens, metric):
    grid = ablate_heads(model, tokens, metric, "mean", reference=tokens)
    _, acts = model.run(tokens, capture=["z"])
    for layer, head in ((0, 1), (1, 0)):
        mean = acts["z", layer].mean(0)
        expected = batch_metric(model, tokens, metric, [mean_ablate("z", mean, layer=layer, heads=head)])
        np.testing.assert_allclose(grid[layer, head], expected, atol=1e-5)


@pytest.mark.slow
def test_resampling_from_one_input_is_patching_from_it(model, tokens, metric):
    """With every reference row the same sequence, each draw (and the mean) is that sequence's activation."""
    donor = jnp.tile(jax.random.randint(jax.random.PRNGKey(7), (1, 8), 0, 11), (4, 1))
    patched = patching_grid(model, tokens, donor, metric, "z", ("layer", "head"), direction="noising")
    resampled = ablation_sweep(model, tokens, metric, "z", ("layer", "head"), "resample", reference=donor,
                               key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(resampled, patched, atol=1e-5)
    meaned = ablation_sweep(model, tokens, metric, "z", ("layer", "head"), "mean", reference=donor)
    np.testing.assert_allclose(meaned, patched, atol=1e-5)


@pytest.mark.slow
def test_resampling_the_batch_itself_is_reproducible(model, tokens, metric):
    key = jax.random.PRNGKey(3)
    a = ablate_heads(model, tokens, metric, "resample", key=key)
    b = ablate_heads(model, tokens, metric, "resample", key=key)
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - float(run_metric(model, tokens, metric))).max()) > 1e-4


def test_bad_ablations_are_rejected(model, tokens, metric):
    with pytest.raises(ValueError, match="pass key="):
        ablate_heads(model, tokens, metric, "resample")
    with pytest.raises(ValueError, match="method must be one of"):
        ablate_heads(model, tokens, metric, "noise")
    with pytest.raises(ValueError, match="needs a batch"):
        ablate_heads(model, tokens[0], LogitDiff(1, 2), "mean")
    with pytest.raises(ValueError, match="reference tokens must be"):
        ablate_heads(model, tokens, metric, "mean", reference=tokens[:, :5])


# ---- steering ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_steering_vector_is_a_difference_of_means(model, tokens):
    other = jax.random.randint(jax.random.PRNGKey(5), (4, 8), 0, 11)
    vectors = steering_vector(model, tokens, other, "resid_post")
    assert vectors.shape == (2, 16)
    capture = eqx.filter_jit(lambda m, t: m.run(t, capture=["resid_post"])[1])
    a, b = capture(model, tokens), capture(model, other)
    np.testing.assert_allclose(vectors, a["resid_post"][:, :, -1].mean(0) - b["resid_post"][:, :, -1].mean(0),
                               atol=1e-5)
    every_position = steering_vector(model, tokens, other, "resid_post", position=None)
    np.testing.assert_allclose(every_position, a["resid_post"].mean((0, 2)) - b["resid_post"].mean((0, 2)),
                               atol=1e-5)


@pytest.mark.slow
def test_steering_sweep_scale_zero_is_a_no_op_and_cells_are_single_runs(model, tokens, metric):
    vectors = jax.random.normal(jax.random.PRNGKey(4), (2, 16))
    scales = jnp.array([0.0, 1.0, 3.0])
    grid = steering_sweep(model, tokens, metric, vectors, scales, positions=[6, 7])
    assert grid.shape == (3, 2)
    np.testing.assert_allclose(grid[0], float(run_metric(model, tokens, metric)), atol=1e-5)
    for s, layer in ((1, 0), (2, 1)):
        expected = batch_metric(model, tokens, metric, [steer("resid_pre", vectors[layer], scales[s], layer=layer,
                                                              positions=[6, 7])])
        np.testing.assert_allclose(grid[s, layer], expected, atol=1e-5)
    assert float(jnp.abs(grid[1:] - grid[0]).min()) > 1e-4


@pytest.mark.slow
def test_steering_is_linear_in_scale_for_a_linear_readout(model, tokens, metric):
    """No normalisation: after the last layer the logits are resid @ W_U + b_U, so the logit difference moves by
    exactly scale * vector . (W_U[:, correct] - W_U[:, wrong])."""
    vectors = jax.random.normal(jax.random.PRNGKey(4), (2, 16))
    scales = jnp.linspace(-2.0, 2.0, 5)
    grid = steering_sweep(model, tokens, metric, vectors, scales, site="resid_post")
    slope = jnp.mean((model.W_U[:, metric.correct] - model.W_U[:, metric.wrong]).T @ vectors[1])
    base = float(run_metric(model, tokens, metric))
    np.testing.assert_allclose(grid[:, 1], base + scales * slope, atol=1e-4)
    assert float(jnp.abs(slope)) > 0.1
    second_difference = grid[2:, 0] - 2 * grid[1:-1, 0] + grid[:-2, 0]  # layer 0 goes through attention
    assert float(jnp.abs(second_difference).max()) > 1e-4


def test_bad_steering_is_rejected(model, tokens, metric):
    with pytest.raises(ValueError, match=r"vectors must be \[layer, d_model\]"):
        steering_sweep(model, tokens, metric, jnp.zeros(16), [1.0])
    with pytest.raises(ValueError, match="site must be one of"):
        steering_sweep(model, tokens, metric, jnp.zeros((2, 16)), [1.0], site="z")
    with pytest.raises(ValueError, match="must be a batch"):
        steering_vector(model, tokens[0], tokens)
