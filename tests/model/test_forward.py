import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.model.sites import available_sites


@pytest.mark.parametrize("normalization", ["none", "layernorm", "rmsnorm"])
@pytest.mark.parametrize("act_fn,d_mlp", [("relu", 32), ("gelu", 32), ("solu", 32), ("relu", 0)])
@pytest.mark.slow
def test_every_config_runs_and_captures_every_site(normalization, act_fn, d_mlp, tokens):
    config = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_mlp=d_mlp,
                               act_fn=act_fn, normalization=normalization)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    logits, acts = model.run(tokens, capture="all")
    assert logits.shape == (3, 8, 11)
    assert acts.names() == available_sites(config)
    for name in acts.names():
        site = toymi.SITES[name]
        expected = (3,) + ((2,) if site.per_layer else ()) + site.shape(config, 8)
        assert acts[name].shape == expected, name
    assert ("mlp_post" in acts) == (d_mlp > 0)
    assert ("ln1_scale" in acts) == (normalization != "none")


def test_unembedding_the_final_residual_gives_the_logits(tiny_model, tokens):
    logits, acts = tiny_model.run(tokens, capture=["resid_final"])
    np.testing.assert_allclose(acts.resid_final @ tiny_model.W_U + tiny_model.b_U, logits, atol=1e-5)


def test_residual_is_the_sum_of_its_parts(tiny_model, tokens):
    _, acts = tiny_model.run(tokens, capture=["embed", "pos_embed", "attn_out", "mlp_out", "resid_post", "result"])
    resid = acts.embed + acts.pos_embed
    for layer in range(2):
        resid = resid + acts["attn_out", layer] + acts["mlp_out", layer]
        np.testing.assert_allclose(resid, acts["resid_post", layer], atol=1e-5)
    # per-head results sum to the attention output, up to the output bias
    np.testing.assert_allclose(acts["result"].sum(-2) + tiny_model.blocks.attn.b_O[None, :, None],
                               acts["attn_out"], atol=1e-5)


def test_per_layer_sites_stack_on_lookup(tiny_model, tokens):
    _, acts = tiny_model.run(tokens, capture=["resid_post", "pattern"])
    assert isinstance(acts.resid_post, tuple) and len(acts.resid_post) == 2
    stacked = acts["resid_post"]  # [batch, layer, pos, d_model]
    assert stacked.shape == (3, 2, 8, 16)
    np.testing.assert_array_equal(stacked[:, 1], acts["resid_post", 1])
    np.testing.assert_array_equal(acts["resid_post", -1], acts.resid_post[1])
    assert acts["pattern"].shape == (3, 2, 2, 8, 8)


def test_pattern_is_causal_and_normalised(tiny_model, tokens):
    _, acts = tiny_model.run(tokens[0], capture=["pattern"])
    pattern = acts["pattern"]  # [layer, head, query, key]
    np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-6)
    assert float(jnp.triu(pattern, k=1).max()) == 0.0


def test_capture_under_vmap_equals_a_loop(tiny_model, tokens):
    _, batched = tiny_model.run(tokens, capture=["z", "resid_mid"])
    for i in range(tokens.shape[0]):
        _, single = tiny_model.run(tokens[i], capture=["z", "resid_mid"])
        np.testing.assert_allclose(batched["z"][i], single["z"], atol=1e-6)
        np.testing.assert_allclose(batched["resid_mid", 1][i], single["resid_mid", 1], atol=1e-6)


@pytest.mark.slow
def test_capture_under_jit_and_grad(tiny_model, tokens):
    def resid_norm(model):
        _, acts = model.run(tokens, capture=["resid_post"])
        return (acts["resid_post", -1] ** 2).sum()

    value, grads = eqx.filter_jit(eqx.filter_value_and_grad(resid_norm))(tiny_model)
    assert np.isfinite(float(value))
    # only the layers that feed resid_post get gradient; the unembedding does not
    assert float(jnp.abs(grads.W_U).max()) == 0.0
    assert float(jnp.abs(grads.blocks.attn.W_V).max()) > 0.0


@pytest.mark.slow
def test_output_positions_match_the_full_forward(tiny_model, tokens):
    full = tiny_model.forward(tokens[0])[0]
    part = tiny_model.forward(tokens[0], output_positions=(2, 7))[0]
    np.testing.assert_allclose(part, full[jnp.array([2, 7])], atol=1e-5)


def test_weights_use_the_per_head_layout(tiny_model):
    assert tiny_model.W_Q.shape == (2, 2, 16, 8)
    assert tiny_model.W_O.shape == (2, 2, 8, 16)
    assert tiny_model.W_in.shape == (2, 16, 32)
    assert tiny_model.W_E.shape == (11, 16) and tiny_model.W_pos.shape == (8, 16) and tiny_model.W_U.shape == (16, 11)


def test_init_scale_scales_weights(tiny_config):
    import dataclasses

    big = toymi.Transformer(dataclasses.replace(tiny_config, init_scale=2.0), jax.random.PRNGKey(0))
    small = toymi.Transformer(tiny_config, jax.random.PRNGKey(0))
    np.testing.assert_allclose(big.W_in, 2 * small.W_in, rtol=1e-6)
    # fan-in scaling: W_out reads d_mlp=32 inputs
    assert abs(float(small.W_out.std()) - 1 / np.sqrt(32)) < 0.03


class TestInputChecks:
    def test_out_of_range_token(self, tiny_model):
        with pytest.raises(ValueError, match=r"token id 11 at index \(1,\) is out of range \[0, 11\)"):
            tiny_model(jnp.array([1, 11, 2]))

    def test_negative_token(self, tiny_model):
        with pytest.raises(ValueError, match="out of range"):
            tiny_model(jnp.array([[1, 2], [-1, 0]]))

    def test_out_of_range_under_jit_is_not_clamped(self, tiny_model):
        with pytest.raises(Exception, match="token id out of range"):
            eqx.filter_jit(lambda m, t: m(t))(tiny_model, jnp.array([1, 11, 2])).block_until_ready()

    def test_too_long(self, tiny_model):
        with pytest.raises(ValueError, match="longer than n_ctx=8"):
            tiny_model(jnp.zeros(9, int))

    def test_float_tokens(self, tiny_model):
        with pytest.raises(TypeError, match="integers"):
            tiny_model(jnp.zeros(3))

    def test_unknown_site_lists_valid_ones(self, tiny_model, tokens):
        with pytest.raises(KeyError, match="unknown site 'resid'; valid sites are: embed, pos_embed, resid_pre"):
            tiny_model.run(tokens, capture=["resid"])

    def test_site_the_model_lacks(self, tokens):
        config = toymi.ModelConfig(d_vocab=11, n_ctx=8, d_model=16, n_heads=2, d_mlp=0)
        model = toymi.Transformer(config, jax.random.PRNGKey(0))
        with pytest.raises(KeyError, match=r"'mlp_post' \(this model has no MLP\)"):
            model.run(tokens, capture=["mlp_post"])

    def test_uncaptured_lookup(self, tiny_model, tokens):
        _, acts = tiny_model.run(tokens, capture=["z"])
        with pytest.raises(KeyError, match="'q' was not captured"):
            acts["q"]
        with pytest.raises(IndexError, match="layer 5 out of range"):
            acts["z", 5]
