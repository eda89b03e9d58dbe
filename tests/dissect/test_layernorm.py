import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import toymi
from compile_log import compiled
from toymi import patch
from toymi.dissect import ln_removal
from toymi.dissect.layernorm import center_unembed, center_writing_weights, fold_ln
from toymi.dissect.ln_removal import (
    default_order, fixed_norms, finetune_with_norms, fold_fixed_norms, measure_scales, norm_sites, remove_layernorm,
    with_fixed_norms,
)
from toymi.tasks.addition import Addition

finetune = ln_removal._finetune

CONFIG = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                           normalization="layernorm")
TOKENS = jax.random.randint(jax.random.PRNGKey(1), (3, 8), 0, 11)


@eqx.filter_jit
def logits(model, tokens):
    return model(tokens)


def randomised(config: toymi.ModelConfig, seed: int = 0) -> toymi.Transformer:
    """A model whose every parameter (norm weights and biases, every bias) is random, so no rewrite is trivially
    exact because a weight is one or a bias zero."""
    model = toymi.Transformer(config, jax.random.PRNGKey(seed))
    leaves, treedef = jax.tree.flatten(model)
    keys = jax.random.split(jax.random.PRNGKey(seed + 100), len(leaves))
    leaves = [leaf + 0.5 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, leaves)


@pytest.mark.parametrize("normalization", ["layernorm", "rmsnorm"])
@pytest.mark.slow
def test_fold_ln_leaves_logits_unchanged_and_norms_unit(normalization):
    model = randomised(dataclasses.replace(CONFIG, normalization=normalization))
    folded = fold_ln(model)
    np.testing.assert_allclose(logits(folded, TOKENS), logits(model, TOKENS), atol=1e-5, rtol=1e-5)
    for norm in (folded.blocks.ln1, folded.blocks.ln2, folded.ln_final):
        np.testing.assert_array_equal(norm.w, 1.0)
        assert (norm.b is None) == (normalization == "rmsnorm")
        if norm.b is not None:
            np.testing.assert_array_equal(norm.b, 0.0)
    assert float(jnp.abs(folded.W_Q - model.W_Q).max()) > 0.1  # the weights really changed
    if normalization == "layernorm":  # reading weights centred over d_model (TransformerLens's center_weights)
        np.testing.assert_allclose(folded.W_in.mean(1), 0.0, atol=1e-6)
        np.testing.assert_allclose(folded.W_U.mean(0), 0.0, atol=1e-6)


@pytest.mark.slow
def test_fold_ln_equals_folding_by_hand_for_the_unembedding():
    model = randomised(CONFIG)
    folded = fold_ln(model, center_weights=False)
    np.testing.assert_allclose(folded.W_U, model.ln_final.w[:, None] * model.W_U, rtol=1e-6)
    np.testing.assert_allclose(folded.b_U, model.b_U + model.ln_final.b @ model.W_U, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits(folded, TOKENS), logits(model, TOKENS), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_center_writing_weights_leaves_logits_unchanged_and_centres_the_residual_stream():
    model = randomised(CONFIG)
    centred = center_writing_weights(model)
    np.testing.assert_allclose(logits(centred, TOKENS), logits(model, TOKENS), atol=1e-5, rtol=1e-5)
    _, acts = centred.run(TOKENS, capture=["resid_pre", "resid_post"])
    np.testing.assert_allclose(acts["resid_pre"].mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(acts["resid_post"].mean(-1), 0.0, atol=1e-5)
    _, before = model.run(TOKENS, capture=["resid_post"])
    assert float(jnp.abs(before["resid_post"].mean(-1)).max()) > 0.1  # it was not centred before


@pytest.mark.slow
def test_center_unembed_keeps_log_probs_and_shifts_logits_by_a_constant():
    model = toymi.Transformer(dataclasses.replace(CONFIG, normalization="none"), jax.random.PRNGKey(0))
    model = eqx.tree_at(lambda m: m.b_U, model, jax.random.normal(jax.random.PRNGKey(2), model.b_U.shape))
    centred = center_unembed(model)
    new, old = logits(centred, TOKENS), logits(model, TOKENS)
    np.testing.assert_allclose(jax.nn.log_softmax(new), jax.nn.log_softmax(old), atol=1e-5)
    shift = old - new
    np.testing.assert_allclose(shift, shift[..., :1] * jnp.ones_like(shift), atol=1e-5)
    assert float(jnp.abs(shift).max()) > 1e-2
    np.testing.assert_allclose(centred.W_U.mean(-1), 0.0, atol=1e-6)


def test_rewrites_say_when_they_do_not_apply():
    plain = toymi.Transformer(dataclasses.replace(CONFIG, normalization="none"), jax.random.PRNGKey(0))
    rms = toymi.Transformer(dataclasses.replace(CONFIG, normalization="rmsnorm"), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="only exact when every reader .* normalization = 'none'"):
        center_writing_weights(plain)
    with pytest.raises(ValueError, match="normalization = 'rmsnorm'"):
        center_writing_weights(rms)
    with pytest.raises(ValueError, match="no normalisation"):
        fold_ln(plain)
    with pytest.raises(ValueError, match="nothing to remove"):
        with_fixed_norms(plain)
    tms = toymi.TMS(toymi.TMSConfig(n_features=5, d_hidden=2), jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="Transformer"):
        center_unembed(tms)


@pytest.mark.slow
def test_a_patched_scale_flows_downstream():
    """The final logits with `ln_final_scale` patched to c are `(centred resid / c * w + b) @ W_U + b_U`."""
    model = randomised(CONFIG)
    c = 3.0
    out, acts = model.run(TOKENS[0], capture=["resid_post", "ln_final_scale"],
                          interventions=[patch("ln_final_scale", c)])
    resid = acts["resid_post", 1]
    centred = resid - resid.mean(-1, keepdims=True)
    expected = (centred / c * model.ln_final.w + model.ln_final.b) @ model.W_U + model.b_U
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(acts["ln_final_scale"], c)  # captured: the value after the intervention


@pytest.mark.slow
def test_fixed_norms_are_constant_and_fold_into_a_model_without_normalisation():
    model = randomised(CONFIG)
    fixed = with_fixed_norms(model)
    # nothing removed yet: the same model
    np.testing.assert_allclose(logits(fixed, TOKENS), logits(model, TOKENS), atol=1e-6, rtol=1e-5)
    assert norm_sites(CONFIG) == (("ln1_scale", 0), ("ln2_scale", 0), ("ln1_scale", 1), ("ln2_scale", 1),
                                  ("ln_final_scale", None))
    assert default_order(CONFIG)[:2] == (("ln2_scale", 0), ("ln2_scale", 1))
    scales = measure_scales(fixed, TOKENS)
    all_fixed = fixed_norms(model, scales, jnp.ones(5, bool))
    _, acts = all_fixed.run(TOKENS, capture=["ln1_scale", "ln2_scale", "ln_final_scale"])
    np.testing.assert_allclose(acts["ln2_scale", 1], scales[3])  # every token: the same constant
    assert float(jnp.abs(logits(all_fixed, TOKENS) - logits(model, TOKENS)).max()) > 1e-3  # that changes outputs
    with pytest.raises(ValueError, match="still data-dependent: ln1_scale\\[1\\]"):
        fold_fixed_norms(fixed_norms(model, scales, jnp.ones(5, bool).at[2].set(False)))
    plain = fold_fixed_norms(all_fixed)
    assert plain.config.normalization == "none" and plain.blocks.ln1 is None and plain.ln_final is None
    np.testing.assert_allclose(logits(plain, TOKENS), logits(all_fixed, TOKENS), atol=1e-4, rtol=1e-4)
    # No per-token division is left: logits are affine in the last residual stream, where LayerNorm made them
    # invariant to its scale.
    _, acts = plain.run(TOKENS[0], capture=["resid_post"])
    r = acts["resid_post", 1]

    def logits_from(model, value):
        return model.run(TOKENS[0], interventions=[patch("resid_post", value, layer=1)])[0]

    f0, f1, f2 = (logits_from(plain, k * r) for k in (0.0, 1.0, 2.0))
    np.testing.assert_allclose(f2 - f0, 2 * (f1 - f0), atol=1e-4, rtol=1e-4)
    assert float(jnp.abs(f2 - f1).max()) > 1e-2
    np.testing.assert_allclose(logits_from(model, 2 * r), logits_from(model, r), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_layernorm_removal_on_a_trained_model_keeps_the_loss(monkeypatch, caplog):
    """One-digit addition (1 layer, LayerNorm) trained briefly, then every norm removed with fine-tuning between:
    the result has no normalisation and its loss stays close to the trained model's. Training reuses the control
    (`finetune_with_norms`, norms kept) so that one compiled chunk serves training and removal alike."""
    task = Addition(n_digits=1, batch_size=64, eval_size=200)
    config = toymi.ModelConfig(d_vocab=12, d_vocab_out=10, n_ctx=6, n_layers=1, d_model=16, n_heads=2, d_head=8,
                               d_mlp=32, normalization="layernorm")
    optimizer = optax.adamw(1e-2, weight_decay=0.0)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    lengths = []  # every fine-tuning call's scan length: one length, one compiled program for every stage
    with compiled(caplog) as compiles:
        for i in range(4):
            model = finetune_with_norms(model, task, optimizer, key=jax.random.PRNGKey(10 + i), steps=50).model
        model = jax.device_put(model, jax.devices()[0])  # committed to its device, as a run loaded from disk is
        monkeypatch.setattr(ln_removal, "_finetune", lambda *a: lengths.append(a[-1]) or finetune(*a))
        result = remove_layernorm(model, task, optimizer, key=jax.random.PRNGKey(1), steps_per_removal=50,
                                  final_steps=60)
    assert lengths == [50, 50, 50, 50, 10]  # the final 110 steps reuse the stages' program, then the remainder
    # ... compiled once per length: the removal's first call gets the committed model beside a fresh step, key and
    # scales, the next ones its own committed outputs, another argument placement unless the loop commits them all
    # (host.committed)
    finetunes = [line for line in compiles if line.startswith("Compiling jit(_finetune)")]
    assert len(finetunes) == 2, [line[-300:] for line in finetunes]  # 50 steps, then the remainder's 10
    loss = result.metric("test_loss")
    assert [row["stage"] for row in result.stages] == [
        "before", "removed ln2_scale[0]", "tuned ln2_scale[0]", "removed ln1_scale[0]", "tuned ln1_scale[0]",
        "removed ln_final_scale", "tuned ln_final_scale", "after"]
    assert result.model.config.normalization == "none" and result.model.ln_final is None
    assert np.isfinite(loss).all() and result.train_loss.shape == (210,) and np.isfinite(result.train_loss).all()
    assert loss[0] < 0.5  # the model learnt the task (chance is ln 10 = 2.3)
    assert loss[-1] < loss[0] + 0.15, loss
    assert loss[-1] == pytest.approx(loss[-2], abs=1e-4)  # folding the fixed norms away changes nothing


@pytest.mark.slow  # 3 s: compiles three scan lengths
def test_fine_tuning_in_chunks_is_the_same_fine_tuning():
    """The removal's stages and its control run their steps as calls of one length (one compiled program); the
    steps, their batches and the result are those of one call."""
    task = Addition(n_digits=1, batch_size=8, eval_size=8)
    config = toymi.ModelConfig(d_vocab=12, d_vocab_out=10, n_ctx=6, n_layers=1, d_model=8, n_heads=1, d_head=8,
                               d_mlp=0, normalization="layernorm")
    model, optimizer = toymi.Transformer(config, jax.random.PRNGKey(0)), optax.adam(1e-2)
    whole = finetune_with_norms(model, task, optimizer, key=jax.random.PRNGKey(1), steps=3)
    chunked = finetune_with_norms(model, task, optimizer, key=jax.random.PRNGKey(1), steps=3, chunk_steps=2)
    np.testing.assert_allclose(chunked.train_loss, whole.train_loss, rtol=1e-5)
    np.testing.assert_allclose(chunked.model.W_E, whole.model.W_E, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="chunk_steps must be >= 1"):
        finetune_with_norms(model, task, optimizer, key=jax.random.PRNGKey(1), steps=3, chunk_steps=0)


@pytest.mark.slow  # 3 s: compiles a removal schedule
def test_layernorm_removal_measures_a_feature_task_on_the_tokens_its_transformer_reads():
    """An AND-gate transformer reads tokens its task makes of feature vectors (`Task.model_inputs`); the scales are
    measured on those (its batches have no `tokens`: this raised AttributeError)."""
    from toymi.tasks.and_gates import AndGates

    task = AndGates(n_features=4, batch_size=16, n_eval=32)
    config = toymi.ModelConfig(**task.model_dims_for("transformer"), n_layers=1, d_model=16, n_heads=2, d_head=8,
                               d_mlp=8, normalization="layernorm")
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    result = remove_layernorm(model, task, optax.sgd(0.0), key=jax.random.PRNGKey(1), steps_per_removal=1)
    assert result.model.config.normalization == "none" and np.isfinite(result.scales).all()
    loss = result.metric("eval_loss")  # no training (learning rate 0): fixing the norms alone moves the loss
    assert np.isfinite(loss).all() and loss[-1] == pytest.approx(loss[-2], abs=1e-5)
