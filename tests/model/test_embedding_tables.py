import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi import patch, steer
from toymi.model import embedding_tables
from toymi.model.embedding_tables import tables_apply


@pytest.mark.parametrize("positional", ["learned", "none"])
@pytest.mark.slow
def test_table_path_equals_direct_projection(positional, tokens, monkeypatch):
    config = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_mlp=32,
                               positional_embedding=positional)
    model = toymi.Transformer(config, jax.random.PRNGKey(3))
    assert tables_apply(config, frozenset())
    tabled_logits, tabled = model.run(tokens, capture=["q", "k", "v"])
    # No table is small enough when the limit is 0: the same model then projects layer 0's input directly.
    monkeypatch.setattr(embedding_tables, "MAX_TABLE_ROWS", 0)
    assert not tables_apply(config, frozenset())
    direct_logits, direct = model.run(tokens[0], capture=["q", "k", "v"])
    for name in ("q", "k", "v"):
        np.testing.assert_allclose(tabled[name][0], direct[name], atol=1e-5)
    np.testing.assert_allclose(tabled_logits[0], direct_logits, atol=1e-5)


def test_upstream_interventions_reach_layer_zero_attention(tokens):
    config = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=1, d_model=16, n_heads=2, d_mlp=32)
    model = toymi.Transformer(config, jax.random.PRNGKey(3))
    _, base = model.run(tokens[0], capture=["k"])
    _, steered = model.run(tokens[0], capture=["k"], interventions=[steer("embed", jnp.ones(16), 3.0)])
    expected = jnp.einsum("pd,hde->phe", 3.0 * jnp.ones((8, 16)), model.W_K[0])
    np.testing.assert_allclose(steered["k", 0] - base["k", 0], expected, atol=1e-4)


def test_tables_are_not_used_with_normalisation_or_big_vocabularies():
    assert not tables_apply(toymi.ModelConfig(d_vocab=11, n_ctx=8, normalization="layernorm"), frozenset())
    assert not tables_apply(toymi.ModelConfig(d_vocab=50_000, n_ctx=8), frozenset())
    assert not tables_apply(toymi.ModelConfig(d_vocab=11, n_ctx=8), frozenset({"resid_pre"}))


@pytest.mark.parametrize("site", ["embed", "pos_embed", "resid_pre"])
def test_a_patch_that_puts_back_the_clean_value_is_bit_identical(site, tokens):
    """Upstream of layer 0's tables: the tables are used when the input is unchanged bit for bit, so a no-op is exact."""
    config = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_mlp=32)
    model = toymi.Transformer(config, jax.random.PRNGKey(3))
    clean, acts = model.run(tokens[0], capture=[site])
    value = acts[site, 0] if site == "resid_pre" else acts[site]
    patched = model.run(tokens[0], interventions=[patch(site, value, layer=0 if site == "resid_pre" else None)])[0]
    assert (patched == clean).all()
    moved = model.run(tokens[0], interventions=[patch(site, value + 1.0, layer=0 if site == "resid_pre" else None)])[0]
    assert not np.allclose(moved, clean, atol=1e-3)  # a real change still reaches the output


@pytest.mark.slow
def test_gradients_through_an_upstream_intervention_match_the_direct_projection(tokens, monkeypatch):
    """Attribution patching differentiates at the clean point, where the tables are in use: the gradient with
    respect to layer 0's input must still be the direct projection's, not zero."""
    config = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=1, d_model=16, n_heads=2, d_mlp=32)
    model = toymi.Transformer(config, jax.random.PRNGKey(3))

    def grad_at_zero():
        def out(delta):
            return model.run(tokens[0], interventions=[steer("resid_pre", delta, layer=0)])[0][-1, 0]
        return jax.grad(out)(jnp.zeros((8, 16)))

    tabled = grad_at_zero()
    monkeypatch.setattr(embedding_tables, "MAX_TABLE_ROWS", 0)
    direct = grad_at_zero()
    assert float(jnp.abs(direct[:-1]).max()) > 1e-3  # earlier positions matter through attention's keys and values
    np.testing.assert_allclose(tabled, direct, atol=1e-5)
