"""Residual stream, logit lens, direct logit attribution and representation similarity against known answers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.dissect.logit_lens import (
    direct_logit_attribution, logit_diff_directions, logit_lens, logit_offset, neuron_direct_logit_attribution,
    unembed_directions,
)
from toymi.dissect.residual import ACCUMULATED_SITES, accumulated_resid, decompose_resid, decomposition_sites
from toymi.dissect.similarity import cka_matrix, linear_cka, pca

CONFIGS = [  # (normalization, d_mlp): every way the final read-out and the decomposition differ
    ("none", 0), ("none", 24), ("layernorm", 0), ("layernorm", 24), ("rmsnorm", 24),
]


def random_transformer(config, seed):
    """Every weight, bias and norm weight drawn at random, so no bias or norm weight can hide at 0 or 1.

    Fills the shapes from `eqx.filter_eval_shape` rather than running the (slow, eager) random init.
    """
    rng = np.random.default_rng(seed)
    shapes = eqx.filter_eval_shape(toymi.Transformer, config, jax.random.PRNGKey(0))

    def fill(leaf):
        if not isinstance(leaf, jax.ShapeDtypeStruct):
            return leaf
        fan_in = leaf.shape[-2] if len(leaf.shape) > 1 else config.d_model
        return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), jnp.float32)

    return jax.tree.map(fill, shapes)


def run_all(normalization, d_mlp, seed=0):
    config = toymi.ModelConfig(d_vocab=11, n_ctx=6, n_layers=2, d_model=12, n_heads=2, d_mlp=d_mlp,
                               normalization=normalization)
    model = random_transformer(config, seed)
    tokens = jnp.asarray(np.random.default_rng(seed).integers(0, 11, (3, 6)))
    capture = set(decomposition_sites(config)) | set(ACCUMULATED_SITES) | ({"mlp_post"} if d_mlp else set())
    logits, acts = model.run(tokens, capture=capture)
    return model, tokens, logits, acts


@pytest.mark.parametrize("normalization,d_mlp", CONFIGS)
@pytest.mark.slow
def test_decomposition_sums_to_the_residual_at_every_layer(normalization, d_mlp):
    model, _, _, acts = run_all(normalization, d_mlp)
    for layer in range(3):
        stack, labels = decompose_resid(model, acts, layer)
        assert stack.shape == (3, len(labels), 6, 12)
        np.testing.assert_allclose(stack.sum(-3), accumulated_resid(acts)[:, layer], atol=1e-5)
    heads_and_mlps = ["L0H0", "L0H1"] + (["L0MLP"] if d_mlp else []) + ["L1H0", "L1H1"] + (["L1MLP"] if d_mlp else [])
    assert labels == ["embed", "pos_embed", *heads_and_mlps, "bias"]
    np.testing.assert_allclose(accumulated_resid(acts)[:, 2], acts["resid_post", 1])


@pytest.mark.parametrize("normalization,d_mlp", CONFIGS)
@pytest.mark.slow
def test_logit_lens_at_the_last_layer_is_the_logits(normalization, d_mlp):
    model, _, logits, acts = run_all(normalization, d_mlp)
    lens = logit_lens(model, acts)
    assert lens.shape == (3, 3, 6, 11)
    np.testing.assert_allclose(lens[:, -1], logits, atol=1e-5)
    # along a direction, the lens is the same read-out without the offset
    direction = logit_diff_directions(model, 3, 4)
    np.testing.assert_allclose(logit_lens(model, acts, direction),
                               (lens - logit_offset(model))[..., 3] - (lens - logit_offset(model))[..., 4], atol=1e-5)


@pytest.mark.parametrize("normalization", ["layernorm", "rmsnorm"])
@pytest.mark.slow
def test_recomputed_logit_lens_normalises_each_layer_as_the_model_would(normalization):
    model, _, logits, acts = run_all(normalization, 24)
    lens = logit_lens(model, acts, recompute_norm=True)
    np.testing.assert_allclose(lens[:, -1], logits, atol=1e-5)
    # layer 1's entry: resid_pre of layer 1 through the real final norm, then the unembedding
    normed, _ = model.ln_final(acts["resid_pre", 1][0])
    np.testing.assert_allclose(lens[0, 1], normed @ model.W_U + model.b_U, atol=1e-5)
    assert np.abs(lens[:, 1] - logit_lens(model, acts)[:, 1]).max() > 1e-2  # differs from the cached-scale lens


@pytest.mark.parametrize("normalization,d_mlp", CONFIGS)
@pytest.mark.slow
def test_direct_logit_attributions_sum_to_the_logits(normalization, d_mlp):
    model, tokens, logits, acts = run_all(normalization, d_mlp)
    stack, labels = decompose_resid(model, acts)
    dla = direct_logit_attribution(model, stack, acts)  # [batch, component, pos, vocab]
    np.testing.assert_allclose(dla.sum(1) + logit_offset(model), logits, atol=1e-5)
    # a per-example, per-position logit difference: correct = the input token, incorrect = the next id
    correct, incorrect = tokens, (tokens + 1) % 11
    diff = direct_logit_attribution(model, stack, acts, logit_diff_directions(model, correct, incorrect))
    gather = lambda x, t: jnp.take_along_axis(x, t[..., None], -1)[..., 0]  # noqa: E731
    np.testing.assert_allclose(diff, gather(dla, correct[:, None]) - gather(dla, incorrect[:, None]), atol=1e-5)


@pytest.mark.parametrize("normalization", ["none", "layernorm", "rmsnorm"])
@pytest.mark.slow
def test_neuron_attributions_sum_to_their_mlp(normalization):
    model, tokens, _, acts = run_all(normalization, 24)
    stack, labels = decompose_resid(model, acts)
    mlp = [labels.index("L0MLP"), labels.index("L1MLP")]
    neurons = neuron_direct_logit_attribution(model, acts)  # [batch, layer, pos, d_mlp, vocab]
    np.testing.assert_allclose(neurons.sum(-2), direct_logit_attribution(model, stack, acts)[:, mlp], atol=1e-5)
    direction = unembed_directions(model, tokens)  # [batch, pos, d_model]: each position's own token
    along = neuron_direct_logit_attribution(model, acts, direction)  # [batch, layer, pos, d_mlp]
    np.testing.assert_allclose(along.sum(-1), direct_logit_attribution(model, stack, acts, direction)[:, mlp],
                               atol=1e-5)
    one = neuron_direct_logit_attribution(model, acts, model.W_U[:, 5])
    np.testing.assert_allclose(one, neurons[..., 5], atol=1e-5)


@pytest.mark.slow
def test_direct_logit_attribution_of_a_linear_model_is_its_weights():
    # Attention that writes nothing leaves logits = W_E[t] @ W_U + W_pos[p] @ W_U + b_U: linear in the embeddings.
    config = toymi.ModelConfig(d_vocab=7, n_ctx=5, n_layers=1, d_model=8, n_heads=2, d_mlp=0)
    model = random_transformer(config, 3)
    model = eqx.tree_at(lambda m: (m.blocks.attn.W_O, m.blocks.attn.b_O), model,
                        (jnp.zeros_like(model.W_O), jnp.zeros_like(model.blocks.attn.b_O)))
    tokens = jnp.array([[0, 3, 6, 3, 1]])
    _, acts = model.run(tokens, capture=decomposition_sites(config))
    stack, labels = decompose_resid(model, acts)
    dla = direct_logit_attribution(model, stack, acts)[0]  # [component, pos, vocab]
    np.testing.assert_allclose(dla[labels.index("embed")], (model.W_E @ model.W_U)[tokens[0]], atol=1e-6)
    np.testing.assert_allclose(dla[labels.index("pos_embed")], model.W_pos @ model.W_U, atol=1e-6)
    np.testing.assert_allclose(dla[labels.index("L0H0")], 0.0)


@pytest.mark.slow
def test_missing_sites_and_bad_arguments_are_named():
    model, _, _, _ = run_all("layernorm", 24)
    _, acts = model.run(jnp.array([1, 2, 3]), capture=["embed"])
    with pytest.raises(KeyError, match="'pos_embed' is needed but was not captured"):
        decompose_resid(model, acts)
    with pytest.raises(KeyError, match="'resid_pre' is needed"):
        logit_lens(model, acts)
    _, acts = model.run(jnp.array([1, 2, 3]), capture=decomposition_sites(model.config))
    with pytest.raises(ValueError, match="layer must be"):
        decompose_resid(model, acts, 3)
    stack, _ = decompose_resid(model, acts)
    with pytest.raises(ValueError, match="d_model=12"):
        direct_logit_attribution(model, stack, acts, jnp.ones(5))
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        logit_diff_directions(model, 11, 0)
    attn_only, _, _, attn_acts = run_all("none", 0)
    with pytest.raises(ValueError, match="no neurons"):
        neuron_direct_logit_attribution(attn_only, attn_acts)


def test_pca_recovers_a_planted_plane():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(10, 2)))[0].T  # two orthonormal directions in 10-d
    # coordinates with sample covariance exactly diag(25, 4): the principal axes are the planted ones
    centred = rng.normal(size=(200, 2))
    centred -= centred.mean(0)
    coords = np.linalg.qr(centred)[0] * np.sqrt(200) * np.array([5.0, 2.0])  # orthogonal zero-mean columns
    x = coords @ basis + 3.0
    projected, components, explained = pca(jnp.asarray(x), 2)
    assert projected.shape == (200, 2) and components.shape == (2, 10)
    np.testing.assert_allclose(np.abs(components @ basis.T), np.eye(2), atol=1e-3)  # the planted directions
    np.testing.assert_allclose(explained, [25 / 29, 4 / 29], atol=1e-4)
    np.testing.assert_allclose(np.abs(projected), np.abs(coords), atol=1e-3)
    with pytest.raises(ValueError, match="n_components"):
        pca(jnp.asarray(x), 11)


@pytest.mark.slow
def test_cka_is_one_for_the_same_representation_up_to_rotation_and_scale():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(100, 8)))
    rotation = jnp.asarray(np.linalg.qr(rng.normal(size=(8, 8)))[0])
    np.testing.assert_allclose(linear_cka(x, x), 1.0, atol=1e-5)
    np.testing.assert_allclose(linear_cka(x, 3.0 * x @ rotation + 2.0), 1.0, atol=1e-5)
    # embedding into a wider space is a rotation too
    np.testing.assert_allclose(linear_cka(x, jnp.concatenate([x, jnp.zeros((100, 4))], 1)), 1.0, atol=1e-5)
    # not invariant to an anisotropic rescaling, and low between independent representations
    assert linear_cka(x, x * jnp.arange(1.0, 9.0)) < 0.99
    assert linear_cka(x, jnp.asarray(rng.normal(size=(100, 8)))) < 0.2


@pytest.mark.slow
def test_cka_matrix_is_every_pair():
    rng = np.random.default_rng(2)
    xs = jnp.asarray(rng.normal(size=(3, 50, 6)))
    ys = jnp.asarray(rng.normal(size=(2, 50, 4)))
    matrix = cka_matrix(xs, ys)
    assert matrix.shape == (3, 2)
    np.testing.assert_allclose(matrix[2, 1], linear_cka(xs[2], ys[1]), rtol=1e-5)
    np.testing.assert_allclose(jnp.diag(cka_matrix(xs)), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(xs[0], ys[0, :40])
