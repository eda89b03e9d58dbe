"""toymi ⇄ Flax NNX: exact weight round trip, forward and site parity over the parity table's configurations,
intermediates as `Activations` that toymi's dissection reads, and weights changed in Flax coming back."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import toymi
from toymi.dissect.attention import induction_score, previous_token_score, repeated_random_tokens
from toymi.dissect.logit_lens import logit_lens
from toymi.dissect.residual import accumulated_resid
from toymi.interop.flax import NNXTransformer, from_nnx, nnx_activations, run_nnx, to_nnx
from toymi.interop.parity import CONFIGS, parity_config

TOKENS = np.random.default_rng(0).integers(0, 13, (3, 8))
FAST = ("none/relu", "LN/gelu")  # the fast tier: without norms (layer 0's embedding tables) and with; all: slow


def random_weights(config, seed: int):
    """Every leaf random, biases included (a bias copied to the wrong place must show), norm weights near 1. Drawn
    in numpy: `toymi.interop.parity.random_weights` compiles a draw per leaf shape (seconds)."""
    rng = np.random.default_rng(seed)
    model = toymi.Transformer(config, jax.random.PRNGKey(seed))
    leaves, tree = jax.tree.flatten(model)
    model = jax.tree.unflatten(tree, [jnp.asarray(rng.normal(size=x.shape) / np.sqrt(config.d_model), jnp.float32)
                                      for x in leaves])
    if config.has_norm:
        norms = lambda m: [n.w for n in (m.blocks.ln1, m.blocks.ln2, m.ln_final) if n is not None]  # noqa: E731
        model = eqx.tree_at(norms, model, [1 + 0.3 * w for w in norms(model)])
    return model


def max_site_difference(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and np.array_equal(np.isfinite(a), np.isfinite(b))  # masked scores coincide
    finite = np.isfinite(a)
    return float(np.abs(np.where(finite, a, 0) - np.where(finite, b, 0)).max())


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in CONFIGS])
def test_round_trip_is_exact_and_every_site_matches_within_1e_6(name):
    model = random_weights(parity_config(name), 0)
    module = to_nnx(model)
    assert isinstance(module, nnx.Module)
    back = from_nnx(module)
    assert jax.tree.structure(back) == jax.tree.structure(model)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(back)):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bit for bit
    logits, acts = model.run(TOKENS, capture="all")
    nnx_logits, nnx_acts = run_nnx(module, TOKENS, capture="all")
    assert nnx_acts.names() == acts.names()  # the same sites, in forward order
    diffs = {s: max_site_difference(acts[s], nnx_acts[s]) for s in acts.names()}
    assert max(diffs.values()) <= 1e-6, diffs  # measured: 0.0 at every site (the same sums in the same order)
    assert max_site_difference(logits, nnx_logits) <= 1e-6
    # One sequence, no capture: another compiled program, whose float32 sums may run in another order (measured on an
    # AVX2-only CPU: 1.3e-6 on a logit of 1.33, 11 ULP), so relative as well as absolute tolerance.
    np.testing.assert_allclose(module(TOKENS[0]), logits[0], atol=1e-6, rtol=1e-5)


def test_capture_records_only_what_is_asked_and_result_only_then():
    module = to_nnx(random_weights(parity_config("LN/gelu"), 0))
    _, acts = run_nnx(module, TOKENS, capture=["pattern", "resid_post"])
    assert acts.names() == ("pattern", "resid_post") and acts["pattern"].shape == (3, 2, 4, 8, 8)
    _, acts = run_nnx(module, TOKENS, capture=["result", "attn_out"])
    np.testing.assert_allclose(acts["result", 1].sum(-2) + module.blocks[1].b_O[...], acts["attn_out", 1], atol=1e-5)
    with pytest.raises(KeyError, match="this model has no MLP"):
        run_nnx(to_nnx(random_weights(parity_config("attn-only/LN"), 0)), TOKENS, capture="mlp_out")


@pytest.mark.slow
def test_dissection_runs_on_the_nnx_capture_and_equals_toymis():
    model = random_weights(parity_config("attn-only/LN"), 2)
    module = to_nnx(model)
    tokens = repeated_random_tokens(jax.random.PRNGKey(0), 4, 4, 13)
    _, ours = model.run(tokens, capture="all")
    _, theirs = run_nnx(module, tokens)
    for score in (induction_score, previous_token_score):
        np.testing.assert_allclose(score(theirs["pattern"], tokens) if score is induction_score
                                   else score(theirs["pattern"]),
                                   score(ours["pattern"], tokens) if score is induction_score
                                   else score(ours["pattern"]), atol=1e-6)
    lens = logit_lens(from_nnx(module), theirs)  # the NNX capture read through the (round-tripped) model
    np.testing.assert_allclose(lens, logit_lens(model, ours), atol=1e-6)
    np.testing.assert_allclose(accumulated_resid(theirs), accumulated_resid(ours), atol=1e-6)


@pytest.mark.slow  # ~3 s: the forward and the gradient each compiled by nnx.jit
def test_weights_changed_in_flax_come_back_and_nnx_jit_runs_it():
    model = random_weights(parity_config("none/relu"), 0)
    module = to_nnx(model)
    jitted = nnx.jit(lambda m, t: m(t))(module, jnp.asarray(TOKENS))
    np.testing.assert_allclose(jitted, model(TOKENS), atol=1e-6)

    def loss(m):
        return m(jnp.asarray(TOKENS)).mean()

    grads = nnx.jit(nnx.grad(loss))(module)  # compiled whole: eagerly, each op of the backward pass compiles alone
    step = jax.tree.map(lambda p, g: p - 0.1 * g, nnx.state(module, nnx.Param), nnx.state(grads, nnx.Param))
    nnx.update(module, step)  # one plain gradient step, in Flax
    back = from_nnx(module)
    changed = float(jnp.abs(back.W_Q - model.W_Q).max())
    assert changed > 0 and float(jnp.abs(back.W_U - module.W_U[...]).max()) == 0.0
    assert float(loss(module)) < float(model(TOKENS).mean())  # the step lowered the loss, and back has it
    np.testing.assert_allclose(back(TOKENS), module(jnp.asarray(TOKENS)), atol=1e-6)


def test_a_flax_module_sowing_toymi_names_becomes_activations_and_mistakes_are_named():
    class Tiny(nnx.Module):
        def __init__(self):
            self.blocks = nnx.List([Layer(), Layer()])

        def __call__(self, x, name="logits"):
            for block in self.blocks:
                x = block(x)
            self.sow(nnx.Intermediate, name, x)
            return x

    class Layer(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "resid_pre", x)
            return x + 1

    x = jnp.zeros((4, 8))
    _, state = nnx.capture(Tiny(), nnx.Intermediate)(x)
    acts = nnx_activations(state)
    assert acts.names() == ("resid_pre", "logits") and acts["resid_pre"].shape == (2, 4, 8)  # layer, pos, d_model
    np.testing.assert_array_equal(acts["resid_pre", 1], 1.0)
    _, state = nnx.capture(Tiny(), nnx.Intermediate)(x, name="not_a_site")
    with pytest.raises(KeyError, match="'not_a_site' is not a toymi site"):
        nnx_activations(state)
    _, state = nnx.capture(Tiny(), nnx.Intermediate)(x, name="resid_post")
    with pytest.raises(KeyError, match="per layer, but its path has no layer index"):
        nnx_activations(state)
    with pytest.raises(TypeError, match="to_nnx converts a toymi Transformer"):
        to_nnx(Tiny())
    with pytest.raises(TypeError, match="from_nnx reads an NNXTransformer"):
        from_nnx(Tiny())
    assert issubclass(NNXTransformer, nnx.Module)
