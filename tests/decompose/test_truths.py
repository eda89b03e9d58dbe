import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.baselines import LinearDictionary
from toymi.decompose.truths import (
    SPLICE_SEED, and_gates_truth, compressed_computation_truth, induction_truth, key_frequency_fractions,
    mlp_io_sampler, modular_truth, tms_truth,
)
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.model.tms import TMS
from toymi.model.tms import TMSConfig
from toymi.tasks.and_gates import AndGates
from toymi.tasks.compressed_computation import CompressedComputation
from toymi.analysis.compressed_computation import neuron_feature_weights
from toymi.tasks.induction import first_occurrence_positions, repeated_positions
from toymi.tasks.modular import ModularArithmetic
from toymi.tasks.tms import ToyModelsOfSuperposition


def _given(directions, encoder=None) -> LinearDictionary:
    """A decomposition with these rows (codes by least squares unless `encoder` is given): what scorers read."""
    directions = np.asarray(directions, np.float64)
    return LinearDictionary("given", directions, np.zeros(directions.shape[1]),
                            encoder or (lambda x: x @ np.linalg.pinv(directions)))


@functools.cache  # immutable; built once per session (eager initialisation is slow)
def _cc():
    task = CompressedComputation(n_features=10, feature_probability=0.2, n_eval=8)
    return ResidualMLP(ResidualMLPConfig(n_features=10, d_model=24, d_mlp=6), jax.random.PRNGKey(1)), task


@pytest.mark.slow
def test_tms_truth_is_the_normalised_columns_of_W_and_samples_h_equal_W_x():
    task = ToyModelsOfSuperposition(n_features=8, feature_probability=0.1, eval_size=8)
    model = TMS(TMSConfig(n_features=8, d_hidden=3), jax.random.PRNGKey(0))
    truth = tms_truth(model, task, n_splice=64)
    W = np.asarray(model.W)
    np.testing.assert_allclose(truth.features, (W / np.linalg.norm(W, axis=0)).T, rtol=1e-6)
    np.testing.assert_allclose(truth.feature_scales, 0.5 * np.linalg.norm(W, axis=0), rtol=1e-6)
    assert (truth.name, truth.d, truth.published, truth.neurons) == ("tms 8→3", 3, {"mmcs": 1.0}, None)
    key = jax.random.PRNGKey(5)
    h = jax.jit(truth.sample, static_argnums=1)(key, 100)  # jit-able with static n
    assert h.shape == (100, 3)
    np.testing.assert_allclose(h, task.sample(key, 100).x @ W.T, rtol=1e-5, atol=1e-6)
    assert not np.allclose(h, truth.sample(jax.random.PRNGKey(6), 100))  # fresh inputs per key


@pytest.mark.slow
def test_compressed_computation_truth_is_the_signed_read_in_weights_of_each_feature():
    model, task = _cc()
    truth = compressed_computation_truth(model, task, n_splice=64)
    w = np.asarray(neuron_feature_weights(model)["input"][0])  # [feature, d_mlp]
    patterns = np.concatenate([np.maximum(w, 0), np.maximum(-w, 0)])
    patterns = patterns[np.linalg.norm(patterns, axis=1) > 1e-6]
    np.testing.assert_allclose(truth.features, patterns / np.linalg.norm(patterns, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_array_equal(truth.neurons, np.eye(6))
    assert jax.jit(truth.sample, static_argnums=1)(jax.random.PRNGKey(0), 33).shape == (33, 6)
    resid = compressed_computation_truth(model, task, site="resid_pre", n_splice=64)
    np.testing.assert_allclose(resid.features, model.W_E)
    np.testing.assert_allclose(resid.neurons, (model.W_in[0] / jnp.linalg.norm(model.W_in[0], axis=0)).T, rtol=1e-6)
    assert truth.io_sample is None and resid.io_sample is None  # transcoders only where the truth is the MLP's output


@pytest.mark.slow
def test_compressed_computation_truth_at_the_mlp_output_writes_each_pattern_through_W_out():
    """At `mlp_out` (no biases) feature i at ±1 writes ReLU(±W_E[i] W_in) W_out; the truth carries the MLP's input
    and output stream for transcoders, and the exact transcoder of the MLP splices in losslessly."""
    from toymi.decompose.transcoder import mlp_transcoder

    model, task = _cc()
    truth = compressed_computation_truth(model, task, site="mlp_out", n_splice=64)
    w = np.asarray(model.W_E @ model.W_in[0])  # [feature, d_mlp]
    patterns = np.concatenate([np.maximum(w, 0), np.maximum(-w, 0)]) @ np.asarray(model.W_out[0])
    patterns = patterns[np.linalg.norm(patterns, axis=1) > 1e-6]
    np.testing.assert_allclose(truth.features, patterns / np.linalg.norm(patterns, axis=1, keepdims=True), atol=1e-5)
    assert truth.name == "compressed computation mlp_out" and truth.d == 24
    x_in, y = truth.io_sample(jax.random.PRNGKey(0), 16)
    np.testing.assert_allclose(y, truth.sample(jax.random.PRNGKey(0), 16), rtol=1e-6)  # the same examples
    exact = mlp_transcoder(model.W_in[0], None, model.W_out[0], None)
    assert truth.transcoder_splice(exact)["loss_recovered"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_mlp_io_sampler_gives_inputs_and_outputs_of_the_mlp():
    model, task = _cc()
    x_in, y = jax.jit(mlp_io_sampler(model, task, 0), static_argnums=1)(jax.random.PRNGKey(0), 40)
    assert x_in.shape == (40, 24) and y.shape == (40, 24)
    np.testing.assert_allclose(y, jax.nn.relu(x_in @ model.W_in[0]) @ model.W_out[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.neuron_basis("mlp_out"), model.W_out[0] / jnp.linalg.norm(
        model.W_out[0], axis=1, keepdims=True), rtol=1e-6)
    assert model.neuron_basis("embed") is None


def _exact_and_gates():
    """A residual MLP computing each AND with its own neuron, ReLU(x_a + x_b - 1), read out as 10·neuron - 5."""
    task = AndGates(n_features=3, feature_probability=0.4, gates="all", n_eval=512)
    config = ResidualMLPConfig(n_features=3, d_model=12, d_mlp=3, n_outputs=3, unembed="learned", in_bias=True)
    model = ResidualMLP(config, jax.random.PRNGKey(0))
    W_E = np.asarray(model.W_E, np.float64)
    reads = task.facts()["circuit"].T.astype(np.float64)  # [feature, gate]: 1 where the input feeds the gate
    complement = np.linalg.svd(W_E)[2][3:]  # [9, d_model], orthogonal to every embedding row
    W_out = complement[:3]
    return task, eqx.tree_at(
        lambda m: (m.W_in, m.b_in, m.W_out, m.learned_W_U, m.b_U), model,
        (jnp.asarray(np.linalg.pinv(W_E) @ reads, jnp.float32)[None], -jnp.ones((1, 3)),
         jnp.asarray(W_out, jnp.float32)[None], jnp.asarray(10 * W_out.T, jnp.float32), -5 * jnp.ones(3)))


@pytest.mark.slow
def test_and_gates_truth_finds_one_gate_per_neuron_and_scores_monosemantic_latents():
    task, model = _exact_and_gates()
    accuracy = ((task.gate_logits(model, task.eval_set.x) > 0) == (task.eval_set.y > 0.5)).mean()
    assert float(accuracy) == 1.0  # the hand-built model computes every gate
    truth = and_gates_truth(model, task)
    # one input alone never fires a neuron (no input directions); gate k is neuron k
    np.testing.assert_allclose(truth.features, np.eye(3), atol=1e-5)
    assert truth.name == "and gates (3/3 sparse gates)"
    scores = truth.score(_given(np.eye(3)))
    assert (scores["monosemantic_fraction"], scores["gate_latent_fraction"], scores["gates_found"]) == (1.0, 1.0, 1.0)
    assert np.isnan(scores["inputs_found"])  # there are no input directions to find
    rotated = truth.score(_given([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]))
    assert rotated["monosemantic_fraction"] == 0.0 and rotated["gates_found"] == 0.0


@pytest.mark.slow
def test_key_frequency_fractions_on_known_fourier_neurons():
    p = 7
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    table = np.stack([np.cos(2 * np.pi * 2 * (a + b) / p), np.sin(2 * np.pi * 2 * a / p),
                      np.cos(2 * np.pi * 3 * b / p)], axis=-1)  # neurons: frequency 2, 2, 3
    out = key_frequency_fractions(jnp.asarray(table, jnp.float32), jnp.eye(3), key=(2,))
    np.testing.assert_allclose(out["key_fraction"], [1, 1, 0], atol=1e-5)
    np.testing.assert_allclose(out["single_frequency_fraction"], [1, 1, 0], atol=1e-5)
    mixed = key_frequency_fractions(jnp.asarray(table, jnp.float32), jnp.asarray([[1.0, 0.0, 1.0]]), key=(2, 3))
    np.testing.assert_allclose(mixed["key_fraction"], [1], atol=1e-5)
    np.testing.assert_allclose(mixed["single_frequency_fraction"], [0.5], atol=1e-5)


@pytest.mark.slow
def test_modular_truth_samples_the_answer_position_and_all_pairs_are_right():
    from tests.decompose.test_splice import _transformer  # reused (untrained; vocab 13 ≥ p + 1): no second build

    task = ModularArithmetic(p=11, frac_train=0.5)
    every = task.all_pairs()
    assert every.tokens.shape == (121, 3)
    np.testing.assert_array_equal(every.targets[:, 2], (every.tokens[:, 0] + every.tokens[:, 1]) % 11)
    model = _transformer()[0]
    truth = modular_truth(model, task, key=(1,))
    assert truth.features is None and truth.d == 16 and truth.name == "modular + mod 11 (key 1)"
    np.testing.assert_array_equal(truth.neurons, np.eye(16))
    x = jax.jit(truth.sample, static_argnums=1)(jax.random.PRNGKey(0), 20)
    batch = task.sample(jax.random.PRNGKey(0), 20)
    _, acts = eqx.filter_jit(lambda m, t: m.run(t, capture=["mlp_post"]))(model, batch.tokens)
    np.testing.assert_allclose(x, acts["mlp_post", 0][:, 2], rtol=1e-5, atol=1e-6)
    scores = truth.score(_given(np.eye(16)))
    assert 0 <= scores["single_frequency_fraction"] <= scores["key_fraction"] <= 1 and "random_key_fraction" in scores


@pytest.mark.slow
def test_truths_reject_the_wrong_model_or_task():
    model, task = _cc()
    with pytest.raises(TypeError, match="TMS model"):
        tms_truth(model, task)
    with pytest.raises(ValueError, match="site must be"):
        compressed_computation_truth(model, task, site="mlp_pre")


@pytest.mark.slow
def test_induction_truth_samples_attention_output_after_bos_and_scores_fractions():
    from tests.decompose.test_splice import _transformer  # the same tiny model and task, built once

    model, task, _, _ = _transformer()
    truth = induction_truth(model, task, layer=0, n_score=16, n_random=8)
    x = jax.jit(truth.sample, static_argnums=1)(jax.random.PRNGKey(0), 30)  # 6 positions after BOS: 5 sequences
    assert x.shape == (30, 12) and truth.d == 12 and truth.features is None
    batch = task.sample(jax.random.PRNGKey(0), 5)
    _, acts = eqx.filter_jit(lambda m, t: m.run(t, capture=["attn_out"]))(model, batch.tokens)
    np.testing.assert_allclose(x, acts["attn_out", 0][:, 1:].reshape(30, 12), rtol=1e-5, atol=1e-6)
    # The scorer reads the decomposition's codes, one row per (sequence, position after BOS), in that order. Codes
    # that fire exactly on repeated tokens, exactly on first occurrences, everywhere, and never:
    scored = task.sample(jax.random.PRNGKey(SPLICE_SEED), 16).tokens
    rep = np.asarray(repeated_positions(scored))[:, 1:].reshape(-1)
    first = np.asarray(first_occurrence_positions(scored))[:, 1:].reshape(-1)
    assert rep.any() and first.any()
    codes = np.stack([rep, -2.0 * first, np.ones(len(rep)), np.zeros(len(rep))], axis=-1)  # signed codes count
    scores = truth.score(_given(np.eye(4, 12), encoder=lambda x: codes[:len(x)]))
    assert set(scores) == {f"{p}{k}" for p in ("", "random_") for k in
                           ("induction_fraction", "first_occurrence_fraction", "separated_fraction")}
    # of the three latents that fire, one is on repeated tokens only, one on first occurrences only
    assert (scores["induction_fraction"], scores["first_occurrence_fraction"], scores["separated_fraction"]) == (
        pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert 0 <= scores["random_separated_fraction"] <= 1
    with pytest.raises(ValueError, match="no alive latents"):
        truth.score(_given(np.eye(3, 12), encoder=lambda x: np.zeros((len(x), 3))))
