"""toymi ⇄ TransformerLens 3.9: conversion both ways, the cache name table, site-by-site parity, weight processing
and patching grids on the same weights. Skipped where torch / transformer_lens are not installed."""

import functools
import importlib
import importlib.util

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.dissect.layernorm import center_unembed, center_writing_weights, fold_ln
from toymi.interop.parity import CONFIGS, parity_config, random_weights, site_differences, train_briefly
from toymi.interop.transformer_lens import (
    activations_to_cache, cache_to_activations, from_transformer_lens, hook_name, to_transformer_lens)

# Checked without importing: importing torch and TransformerLens takes ~6 s, which every pytest-xdist worker paid
# while collecting this module, though only the workers running its tests need them. `torch` is imported on first use.
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("torch", "transformer_lens")),
                                reason="torch and transformer_lens are not installed")


class _ImportedOnFirstUse:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


torch = _ImportedOnFirstUse("torch")

TOKENS = np.random.default_rng(0).integers(0, 13, (3, 8))
GOAL = {"float32": 1e-5, "float64": 1e-10}


@functools.cache
def _weights(name, trained):
    """Config `name`'s random weights, trained briefly or not, in float32, once per process: both dtypes' checks read
    them (float64 widened by `_in_float64`), so each config's training step compiles once, and no model is
    initialised under x64, rather than once per dtype (these compiles are most of a check)."""
    model = random_weights(parity_config(name), jax.random.PRNGKey(0))
    return train_briefly(model, jax.random.PRNGKey(1)) if trained else model


def _in_float64(model):
    """`model`'s weights in float64 (call under x64), each moved by a relative jitter of standard deviation 1e-6
    (about eight float32 ulps) so that its float64 bits matter: a conversion that rounded the weights to float32
    misses float64's goal by orders of magnitude, as it would for weights drawn in float64."""
    rng = np.random.default_rng(0)

    def widen(x):
        x = np.asarray(x, np.float64)
        return jnp.asarray(x * (1 + 1e-6 * rng.standard_normal(x.shape)), jnp.float64)

    return jax.tree.map(widen, model)


def _check_parity(name, dtype, trained):
    model = _weights(name, trained)  # outside x64: the same float32 weights whichever dtype asks first
    with jax.enable_x64(dtype == "float64"):
        if dtype == "float64":
            model = _in_float64(model)
        assert {x.dtype for x in jax.tree.leaves(model)} == {jnp.dtype(dtype)}
        diffs = site_differences(model, TOKENS)
    assert {"resid_pre", "z", "resid_final", "logits"} <= set(diffs)
    assert max(diffs.values()) <= GOAL[dtype], {k: v for k, v in diffs.items() if v > GOAL[dtype]}


@pytest.mark.slow  # seconds alone, but the first TransformerLens forward and jit compile dominate
def test_parity_layernorm_gelu_exact_float32():
    _check_parity("LN/gelu", "float32", trained=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trained", [False, True])
def test_parity_every_config(name, dtype, trained):
    _check_parity(name, dtype, trained)


@pytest.mark.slow
def test_old_gelu_name_is_what_differs():
    """The issue's finding: the tanh GELU under TransformerLens's exact name differs downstream of the MLP."""
    model = random_weights(parity_config("LN/gelu_new"), jax.random.PRNGKey(0))
    hooked = to_transformer_lens(model)
    hooked.cfg.act_fn = "gelu"
    hooked.blocks[0].mlp.select_activation_function()
    logits = hooked(torch.tensor(TOKENS)).detach().numpy()
    assert np.abs(logits - np.asarray(model(jnp.asarray(TOKENS)))).max() > 1e-5


@pytest.mark.parametrize("name", ["none/relu", "attn-only/LN", "RMS/solu", "no W_pos/RMS"])
@pytest.mark.slow
def test_round_trip_is_the_same_model(name):
    config = parity_config(name)
    model = random_weights(config, jax.random.PRNGKey(2))
    hooked = to_transformer_lens(model)
    back = from_transformer_lens(hooked, positional_embedding=config.positional_embedding)
    assert back.config == config
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(back)):
        np.testing.assert_array_equal(a, b)
    if config.positional_embedding == "none":
        assert not hooked.W_pos.any()  # zero-filled, as documented


@pytest.mark.slow
def test_from_transformer_lens_refuses_what_toymi_lacks():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_vocab=13, act_fn="silu",
                                  positional_embedding_type="rotary", rotary_dim=4, device="cpu")
    with pytest.warns(DeprecationWarning):
        hooked = HookedTransformer(cfg)
    with pytest.raises(ValueError, match=r"positional_embedding_type='rotary'.*act_fn='silu'"):
        from_transformer_lens(hooked)
    nonzero = to_transformer_lens(random_weights(parity_config("none/relu"), jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="W_pos is not zero"):
        from_transformer_lens(nonzero, positional_embedding="none")


@pytest.mark.slow
def test_lnpre_comes_in_as_unit_weights():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_mlp=32, d_vocab=13,
                                  act_fn="gelu_new", normalization_type="LNPre", device="cpu", seed=0)
    with pytest.warns(DeprecationWarning):
        hooked = HookedTransformer(cfg)
    model = from_transformer_lens(hooked)
    assert model.config.normalization == "layernorm" and float(model.blocks.ln1.w.min()) == 1.0
    assert not model.blocks.ln1.b.any()
    expected = hooked(torch.tensor(TOKENS)).detach().numpy()
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(TOKENS))), expected, atol=1e-5)


@pytest.mark.slow
def test_cache_and_activations_convert_both_ways():
    model = random_weights(parity_config("LN/gelu"), jax.random.PRNGKey(0))
    hooked = to_transformer_lens(model)
    _, acts = model.run(jnp.asarray(TOKENS), capture=["resid_pre", "ln1_scale", "pattern", "resid_final", "logits"])
    cache = activations_to_cache(acts, hooked)
    assert cache.has_batch_dim and tuple(cache["blocks.1.ln1.hook_scale"].shape) == (3, 8, 1)
    assert hook_name("resid_pre", 1) in cache and "unembed.hook_out" in cache
    back = cache_to_activations(cache)
    assert back.names() == acts.names()
    for site in acts.names():
        np.testing.assert_array_equal(back[site], acts[site])
    with pytest.raises(KeyError, match="needs a layer"):
        hook_name("z")
    with pytest.raises(KeyError, match="not a toymi site"):
        hook_name("hook_z", 0)


@pytest.mark.slow
def test_process_weights_matches_fold_ln_and_centring_but_folds_b_V():
    """TransformerLens's `process_weights_` = toymi's fold_ln + center_writing_weights + center_unembed, except that
    it also moves b_V into b_O (exact, since each head's pattern sums to one); toymi leaves b_V where it is."""
    model = random_weights(parity_config("LN/gelu_new"), jax.random.PRNGKey(3))
    ours = center_unembed(center_writing_weights(fold_ln(model)))
    hooked = to_transformer_lens(model)
    hooked.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    theirs = from_transformer_lens(hooked)  # LNPre comes in as a unit-weight LayerNorm
    b_O = ours.blocks.attn.b_O + jnp.einsum("lhe,lhed->ld", ours.blocks.attn.b_V, ours.blocks.attn.W_O)
    moved = eqx.tree_at(lambda m: (m.blocks.attn.b_O, m.blocks.attn.b_V), ours,
                        (b_O, jnp.zeros_like(ours.blocks.attn.b_V)))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(moved), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, atol=2e-6, err_msg=jax.tree_util.keystr(path))
    assert float(jnp.abs(ours.blocks.attn.b_V).max()) > 0.1  # the difference is real before moving
    np.testing.assert_allclose(np.asarray(theirs(jnp.asarray(TOKENS))), np.asarray(ours(jnp.asarray(TOKENS))),
                               atol=1e-5)
