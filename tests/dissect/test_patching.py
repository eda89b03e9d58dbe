"""Activation patching, path patching, attribution patching and the patching metrics, against known answers.

Compiling a grid costs about a second of one core: the tests share a few grid shapes (a grid with the same site,
axes and input shapes is compiled once for every model and token values) and an attention-only model.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi import patch, steer
from toymi.dissect.attribution import attribution_grid, compare_attribution
from toymi.dissect.metrics import CrossEntropy, LogitDiff, normalised
from toymi.dissect.patching import patching_grid, path_patching, run_metric

CONFIG = dict(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_head=8)


traces = []  # one entry per trace of a grid (the metric runs only while a grid is traced)


class Counting(LogitDiff):
    def __call__(self, logits):
        traces.append(1)
        return super().__call__(logits)


@pytest.fixture(scope="module")
def model():
    """No normalisation, no MLP (cheap to compile): the last layer's `z` reaches the logits linearly."""
    return toymi.Transformer(toymi.ModelConfig(**CONFIG, d_mlp=0, init_scale=2.0), jax.random.PRNGKey(2))


@pytest.fixture(scope="module")
def pair():
    clean = jax.random.randint(jax.random.PRNGKey(1), (3, 8), 0, 10)
    corrupted = clean.at[:, 2].set(10)  # token 10 never occurs in the clean batch
    return clean, corrupted


@pytest.fixture(scope="module")
def metric():
    return Counting(jnp.array([1, 2, 3]), jnp.array([4, 5, 6]))


@eqx.filter_jit
def _per_example(model, tokens, metric, stacked):
    return metric(jax.vmap(lambda t, ivs: model.forward(t, interventions=ivs)[0])(tokens, stacked))


def metric_of(model, clean, metric, interventions_for):
    """Reference: the batch's metric with example `b` run under `interventions_for(b)` (one plain run each)."""
    per_example = [interventions_for(b) for b in range(clean.shape[0])]
    return float(_per_example(model, clean, metric, jax.tree.map(lambda *xs: jnp.stack(xs), *per_example)))


# ---- activation patching ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_patching_a_run_with_itself_is_a_no_op(model, pair, metric):
    clean, _ = pair
    base = float(run_metric(model, clean, metric))
    for site, over in (("resid_pre", ("layer", "pos")), ("z", ("layer", "head", "pos"))):
        grid = patching_grid(model, clean, clean, metric, site, over, direction="noising")
        np.testing.assert_allclose(grid, base, atol=1e-5, err_msg=site)


@pytest.mark.slow
def test_patching_the_whole_residual_recovers_the_corrupted_run(model, pair, metric):
    clean, corrupted = pair
    corrupt_value = float(run_metric(model, corrupted, metric))
    grid = patching_grid(model, clean, corrupted, metric, "resid_post", ("layer",), direction="noising")
    np.testing.assert_allclose(grid[-1], corrupt_value, atol=1e-5)  # the last layer's output: all of it
    np.testing.assert_allclose(grid[0], corrupt_value, atol=1e-5)  # layer 0's output: everything after follows
    assert abs(corrupt_value - float(run_metric(model, clean, metric))) > 1e-2  # so this was not trivially true


@pytest.mark.slow
def test_residual_grid_cells_are_single_patched_runs(model, pair, metric):
    clean, corrupted = pair
    grid = patching_grid(model, clean, corrupted, metric, "resid_pre", ("layer", "pos"), direction="noising")
    recomputed = patching_grid(model, clean, corrupted, metric, "resid_pre", ("layer", "pos"), reuse_clean=False, direction="noising")
    assert grid.shape == (2, 8)
    np.testing.assert_allclose(grid, recomputed, atol=1e-5)
    _, corrupt = model.run(corrupted, capture=["resid_pre"])
    for layer, pos in ((0, 2), (1, 5), (1, 1)):
        expected = metric_of(model, clean, metric, lambda b: [
            patch("resid_pre", corrupt["resid_pre", layer][b], layer=layer, positions=pos)])
        np.testing.assert_allclose(grid[layer, pos], expected, atol=1e-5)
    # causality: tokens differ at position 2 only, so patching earlier positions changes nothing
    np.testing.assert_allclose(grid[:, :2], float(run_metric(model, clean, metric)), atol=1e-5)
    assert float(jnp.abs(grid[0, 2] - grid[0, 0])) > 1e-3


@pytest.mark.slow
def test_head_grids_select_one_head(model, pair, metric):
    """Head (1, 0) has W_O = 0: it is not in the computation path, so patching it changes nothing."""
    clean, corrupted = pair
    cut = eqx.tree_at(lambda m: m.blocks.attn.W_O, model, model.blocks.attn.W_O.at[1, 0].set(0.0))
    base = float(run_metric(cut, clean, metric))
    by_head = patching_grid(cut, clean, corrupted, metric, "z", ("layer", "head"), direction="noising")
    by_pos = patching_grid(cut, clean, corrupted, metric, "z", ("layer", "head", "pos"), direction="noising")
    assert by_head.shape == (2, 2) and by_pos.shape == (2, 2, 8)
    np.testing.assert_allclose(by_head[1, 0], base, atol=1e-6)
    np.testing.assert_allclose(by_pos[1, 0], base, atol=1e-6)
    assert float(jnp.abs(by_head[1, 1] - base)) > 1e-3  # its neighbour does matter
    assert float(jnp.abs(by_pos[1, 1] - base).max()) > 1e-3
    _, corrupt = cut.run(corrupted, capture=["z"])
    for layer, head, pos in ((0, 1, 2), (1, 1, 6)):
        expected = metric_of(cut, clean, metric, lambda b: [
            patch("z", corrupt["z", layer][b], layer=layer, heads=head, positions=pos)])
        np.testing.assert_allclose(by_pos[layer, head, pos], expected, atol=1e-5)


@pytest.mark.slow
def test_neuron_grid_selects_one_neuron(pair, metric):
    """Neuron 3 of layer 0 has no output weights: patching it changes nothing; patching neuron 5 is one run."""
    clean, corrupted = pair
    model = toymi.Transformer(toymi.ModelConfig(**CONFIG, d_mlp=32), jax.random.PRNGKey(0))
    cut = eqx.tree_at(lambda m: m.blocks.mlp.W_out, model, model.blocks.mlp.W_out.at[0, 3].set(0.0))
    grid = patching_grid(cut, clean, corrupted, metric, "mlp_post", ("layer", "neuron"), direction="noising")
    assert grid.shape == (2, 32)
    np.testing.assert_allclose(grid[0, 3], float(run_metric(cut, clean, metric)), atol=1e-6)
    _, clean_acts = cut.run(clean, capture=["mlp_post"])
    _, corrupt = cut.run(corrupted, capture=["mlp_post"])
    value = clean_acts["mlp_post", 0].at[..., 5].set(corrupt["mlp_post", 0][..., 5])
    expected = metric_of(cut, clean, metric, lambda b: [patch("mlp_post", value[b], layer=0)])
    np.testing.assert_allclose(grid[0, 5], expected, atol=1e-5)
    assert abs(expected - float(run_metric(cut, clean, metric))) > 1e-4


@pytest.mark.slow
def test_a_grid_compiles_once(model, pair, metric):
    """Other tokens, other weights and other answers reuse the compiled grid."""
    clean, corrupted = pair
    first = patching_grid(model, clean, corrupted, metric, direction="noising")
    n = len(traces)
    assert n > 0
    other_model = jax.tree.map(lambda w: w * 1.1 if eqx.is_inexact_array(w) else w, model)
    second = patching_grid(other_model, corrupted, clean, Counting(jnp.array([0, 0, 1]), jnp.array([2, 3, 4])), direction="noising")
    assert len(traces) == n
    assert float(jnp.abs(first - second).max()) > 1e-3  # it did compute something new


# ---- path patching ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_path_to_the_logits_is_the_direct_path_when_later_heads_are_frozen(model, pair, metric):
    clean, corrupted = pair
    grid = path_patching(model, clean, corrupted, metric)
    assert grid.shape == (2, 2)
    # last layer: nothing downstream, so the path is the head itself
    heads = patching_grid(model, clean, corrupted, metric, "z", ("layer", "head"), direction="noising")
    np.testing.assert_allclose(grid[1], heads[1], atol=1e-5)
    # layer 0: layer 1 frozen, no MLP -> only the sender's own output reaches the final residual
    _, zc = model.run(clean, capture=["z"])
    _, zx = model.run(corrupted, capture=["z"])
    for head in range(2):
        delta = jnp.einsum("bpe,ed->bpd", zx["z", 0][:, :, head] - zc["z", 0][:, :, head], model.W_O[0, head])
        expected = metric_of(model, clean, metric, lambda b: [steer("resid_post", delta[b], layer=1)])
        np.testing.assert_allclose(grid[0, head], expected, atol=1e-5)
    assert float(jnp.abs(grid[0] - heads[0]).max()) > 1e-4  # freezing layer 1 made a difference


@pytest.mark.slow
def test_path_to_a_receivers_keys(model, pair, metric):
    clean, corrupted = pair
    grid = path_patching(model, clean, corrupted, metric, receivers=[(1, 1)], receiver_input="k")
    base = float(run_metric(model, clean, metric))
    np.testing.assert_allclose(grid[1], base, rtol=1e-5)  # a receiver's input cannot see its own layer
    _, zx = model.run(corrupted, capture=["z"])
    for head in range(2):
        def sender_keys(b):
            _, acts = model.run(clean[b], capture=["k"],
                                    interventions=[patch("z", zx["z", 0][b], layer=0, heads=head)])
            return [patch("k", acts["k", 1], layer=1, heads=1)]

        np.testing.assert_allclose(grid[0, head], metric_of(model, clean, metric, sender_keys), rtol=1e-5)
    assert float(jnp.abs(grid[0] - base).max()) > 1e-4
    with pytest.raises(ValueError, match="together"):
        path_patching(model, clean, corrupted, metric, receivers=[(1, 1)])
    with pytest.raises(ValueError, match="out of range"):
        path_patching(model, clean, corrupted, metric, receivers=[(2, 0)], receiver_input="q")


# ---- attribution patching --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_attribution_is_exact_where_the_metric_is_linear(model, pair, metric):
    clean, corrupted = pair
    result = compare_attribution(model, clean, corrupted, metric, "z", ("layer", "head", "pos"))
    assert result.patched.shape == result.attributed.shape == (2, 2, 8)
    # last layer, no norm, no MLP: the logit difference is linear in z, so first order is everything
    np.testing.assert_allclose(result.attributed[1], result.patched[1], atol=1e-5)
    assert float(jnp.abs(result.attributed[0] - result.patched[0]).max()) > 1e-4  # layer 0 goes through attention
    assert float(result.max_abs_diff) == pytest.approx(float(jnp.abs(result.attributed - result.patched).max()))
    assert 0.5 < float(result.correlation) <= 1.0


@pytest.mark.slow
def test_attribution_error_shrinks_quadratically(model, pair, metric):
    """Move the corrupted token's embedding towards the clean one's: the patch's effect scales with eps, the error
    of the first-order estimate with eps squared (read at the patched cell, layer 0 position 2)."""
    clean, corrupted = pair
    same = clean.at[:, 2].set(clean[0, 2])  # every example's token at position 2 is the one interpolated from
    errors, effects = [], []
    for eps in (0.05, 0.025, 0.0125):
        W_E = model.W_E.at[10].set(model.W_E[clean[0, 2]] + eps * (model.W_E[10] - model.W_E[clean[0, 2]]))
        near = eqx.tree_at(lambda m: m.W_E, model, W_E)
        patched = patching_grid(near, same, corrupted, metric, "resid_pre", ("layer", "pos"), direction="noising")[0, 2]
        attributed = attribution_grid(near, same, corrupted, metric, "resid_pre", ("layer", "pos"))[0, 2]
        effects.append(abs(float(patched - run_metric(near, same, metric))))
        errors.append(abs(float(attributed - patched)))
    assert errors[-1] > 1e-5  # well above float32 noise
    for i in range(2):
        assert 1.7 < effects[i] / effects[i + 1] < 2.3  # first order: halves with eps
        assert 3.0 < errors[i] / errors[i + 1] < 5.0  # second order: quarters with eps


# ---- metrics and bad input -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_metrics_known_values():
    logits = jnp.zeros((2, 3, 5)).at[0, 2, 1].set(3.0).at[1, 1, 4].set(-2.0)
    assert float(LogitDiff(jnp.array([1, 0]), jnp.array([0, 4]))(logits)) == pytest.approx((3.0 + 0.0) / 2)
    assert float(LogitDiff(jnp.array([1, 0]), jnp.array([0, 4]), position=jnp.array([2, 1]))(logits)) == \
        pytest.approx((3.0 + 2.0) / 2)
    tokens = jnp.array([[1, 2, 3], [4, 0, 1]])
    ce = CrossEntropy.next_token(tokens)(logits)
    logp = jax.nn.log_softmax(logits, -1)
    expected = -(logp[0, 0, 2] + logp[0, 1, 3] + logp[1, 0, 0] + logp[1, 1, 1]) / 4
    assert float(ce) == pytest.approx(float(expected), rel=1e-6)
    np.testing.assert_allclose(normalised(jnp.array([2.0, 0.5, -1.0]), 2.0, -1.0), [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="are equal"):
        normalised(1.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="got logits of shape"):
        LogitDiff(jnp.array([1, 0]), jnp.array([0, 4]))(logits[0])


def test_bad_grids_are_rejected(model, pair, metric):
    clean, corrupted = pair
    with pytest.raises(ValueError, match="cannot be patched"):
        patching_grid(model, clean, corrupted, metric, "embed", direction="noising")
    with pytest.raises(ValueError, match="has no 'head' axis"):
        patching_grid(model, clean, corrupted, metric, "resid_pre", ("layer", "head"), direction="noising")
    with pytest.raises(ValueError, match="is not a grid"):
        patching_grid(model, clean, corrupted, metric, "resid_pre", ("pos", "layer"), direction="noising")
    with pytest.raises(ValueError, match="one shape"):
        patching_grid(model, clean, corrupted[:2], metric, direction="noising")
    with pytest.raises(KeyError, match="unknown site"):
        patching_grid(model, clean, corrupted, metric, "resid", direction="noising")
    with pytest.raises(ValueError, match="must return a scalar"):
        patching_grid(model, clean, corrupted, lambda logits: logits[:, -1, 0], "resid_post", ("layer",), direction="noising")


@pytest.mark.slow
def test_patching_direction_is_explicit_and_means_what_it_says(model, pair, metric):
    clean, corrupted = pair
    clean_metric, corrupted_metric = run_metric(model, clean, metric), run_metric(model, corrupted, metric)
    assert abs(float(clean_metric - corrupted_metric)) > 1e-3
    # the whole residual stream before layer 0 carries the whole input: patching it moves the run to the source
    denoised = patching_grid(model, clean, corrupted, metric, "resid_pre", ("layer",), direction="denoising")
    noised = patching_grid(model, clean, corrupted, metric, "resid_pre", ("layer",), direction="noising")
    np.testing.assert_allclose(denoised[0], clean_metric, rtol=1e-5)  # ran corrupted, clean values restored it
    np.testing.assert_allclose(noised[0], corrupted_metric, rtol=1e-5)  # ran clean, corrupted values broke it
    swapped = patching_grid(model, corrupted, clean, metric, "z", ("layer", "head"), direction="noising")
    np.testing.assert_array_equal(
        patching_grid(model, clean, corrupted, metric, "z", ("layer", "head"), direction="denoising"), swapped)
    with pytest.raises(ValueError, match="direction must be 'denoising'"):
        patching_grid(model, clean, corrupted, metric, direction="clean")
    with pytest.raises(TypeError, match="direction"):
        patching_grid(model, clean, corrupted, metric)  # no default: the two are easy to read backwards
