import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.errors import ConfigError
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.experiment.spec import Spec
from toymi.tasks import make_task
from toymi.tasks.compressed_computation import naive_model
from toymi.analysis.compressed_computation import neuron_ablation_effects, neuron_feature_weights, neurons_used
from toymi.experiment import train
from toymi.train import metrics_log

SMALL = {"task": {"name": "compressed_computation", "n_features": 20, "feature_probability": 0.05,
                  "batch_size": 256, "n_eval": 2000},
         "model": {"d_model": 200, "d_mlp": 10},
         "train": {"steps": 300, "lr": 3e-3, "weight_decay": 0.01, "schedule": "cosine", "eval_every": 100,
                   "checkpoint_every": 300}}


@pytest.mark.slow
def test_sampler_statistics():
    task = make_task("compressed_computation", n_features=50, feature_probability=0.1)
    batch = task.sample(jax.random.PRNGKey(0), 20_000)
    x = np.asarray(batch.x)
    active = x != 0
    assert abs(active.mean() - 0.1) < 0.005
    assert abs(active.sum(1).mean() - 5.0) < 0.05  # features independent: any number may be on
    values = x[active]
    assert values.min() >= -1 and values.max() < 1
    assert abs(values.mean()) < 0.02 and abs(values.var() - 1 / 3) < 0.01  # U[-1, 1)
    np.testing.assert_allclose(batch.y, x + np.maximum(x, 0))
    # fresh on every key, fixed eval set
    assert not np.array_equal(task.train_batch(jax.random.PRNGKey(1)).x, task.train_batch(jax.random.PRNGKey(2)).x)
    again = make_task("compressed_computation", n_features=50, feature_probability=0.1)
    np.testing.assert_array_equal(task.eval_batches()["eval"].x, again.eval_batches()["eval"].x)


@pytest.mark.slow
def test_naive_model_computes_the_first_d_mlp_relus_exactly():
    config = ResidualMLPConfig(n_features=8, d_model=40, d_mlp=3)
    naive = naive_model(ResidualMLP(config, jax.random.PRNGKey(0)))
    x = jnp.array([0.5, -0.5, 0.7, 0.9, 0, 0, 0, 0])
    _, acts = naive.run(x, capture=["mlp_post"])
    np.testing.assert_allclose(acts["mlp_post", 0], [0.5, 0.0, 0.7], atol=1e-5)  # ReLU of features 0..2
    # its output differs from the bare residual read-out by exactly ReLU(x) on the first three features
    np.testing.assert_allclose(naive(x) - x @ naive.W_E @ naive.W_E.T, [0.5, 0, 0.7, 0, 0, 0, 0, 0], atol=1e-5)


def test_the_naive_model_of_a_clean_deeper_model_gives_each_layer_its_own_features():
    """Three layers of 2 neurons and 7 features: layer l computes features 2l and 2l + 1 (the 7th is ignored);
    with an orthonormal embedding nothing a layer writes leaks into what a later one reads, so the ReLUs are
    exact."""
    config = ResidualMLPConfig(n_features=7, d_model=30, d_mlp=2, n_layers=3, embedding="orthogonal")
    naive = naive_model(ResidualMLP(config, jax.random.PRNGKey(0)))
    x = jnp.array([0.5, -0.5, 0.7, 0.9, -0.2, 0.3, 0.8])
    _, acts = naive.run(x, capture=["mlp_post"])
    for layer, expected in enumerate([[0.5, 0.0], [0.7, 0.9], [0.0, 0.3]]):
        np.testing.assert_allclose(acts["mlp_post", layer], expected, atol=1e-5)
    np.testing.assert_allclose(naive(x), x + jax.nn.relu(x).at[6].set(0.0), atol=1e-5)


@pytest.mark.slow
def test_naive_loss_matches_the_analytic_baseline():
    task = make_task("compressed_computation", n_features=20, feature_probability=0.05, n_eval=50_000)
    model = ResidualMLP(ResidualMLPConfig(n_features=20, d_model=60, d_mlp=5), jax.random.PRNGKey(0))
    metrics = task.evaluate(model, task.eval_batches()["eval"])
    # error_i = sum_j x_j G_ji (the residual's interference, G = W_E W_Eᵀ - I) - ReLU(x_i) for ignored i; the
    # cross terms vanish (independent, zero-mean features), so the MSE is (p/3) |G|² / n + (n - k) / n * p / 6
    gram = np.asarray(model.W_E @ model.W_E.T) - np.eye(20)
    interference = 0.05 / 3 * (gram**2).sum() / 20
    expected = interference + 15 / 20 * task.facts()["mse_per_ignored_feature"]
    np.testing.assert_allclose(metrics["naive_loss"], expected, rtol=0.05)
    assert interference > 0.2 * expected  # so the check covers both terms


@pytest.mark.slow
def test_naive_loss_of_the_clean_variant_is_the_ignored_features_alone():
    task = make_task("compressed_computation", n_features=20, feature_probability=0.05, n_eval=50_000)
    config = ResidualMLPConfig(n_features=20, d_model=60, d_mlp=5, embedding="orthogonal")
    metrics = task.evaluate(ResidualMLP(config, jax.random.PRNGKey(0)), task.eval_batches()["eval"])
    # W_E W_Eᵀ = I: no interference, so the naive solution errs only on its 15 ignored features
    expected = 15 / 20 * task.facts()["mse_per_ignored_feature"]
    np.testing.assert_allclose(metrics["naive_loss"], expected, rtol=0.05)
    clean = Spec.load(Path(__file__).resolve().parents[2] / "tasks" / "compressed_computation_clean.toml")
    assert clean.model.embedding == "orthogonal"  # the shipped clean spec differs from the published one only there
    noisy = Spec.load(Path(__file__).resolve().parents[2] / "tasks" / "compressed_computation.toml")
    assert dataclasses.replace(clean.model, embedding="random") == noisy.model and clean.task == noisy.task


@pytest.mark.slow
def test_circuit_measures_on_a_hand_built_model():
    config = ResidualMLPConfig(n_features=6, d_model=30, d_mlp=4)
    naive = naive_model(ResidualMLP(config, jax.random.PRNGKey(0)))
    weights = neuron_feature_weights(naive)
    assert weights["input"].shape == (1, 6, 4) and weights["output"].shape == (1, 4, 6)
    np.testing.assert_allclose(weights["input"][0, :4], np.eye(4), atol=1e-5)  # neuron n reads feature n only
    effects = neuron_ablation_effects(naive)
    assert effects.shape == (6, 1, 4)
    # on x = e_i, removing neuron i removes ReLU(1) = 1 from output i; other neurons are silent
    np.testing.assert_allclose(effects[:4, 0], np.eye(4), atol=1e-5)
    np.testing.assert_allclose(effects[4:], 0.0, atol=1e-6)
    used = neurons_used(effects)
    np.testing.assert_array_equal(used[:, 0], np.eye(6, 4, dtype=bool))


@pytest.mark.slow
def test_a_small_model_beats_the_naive_solution_and_reloads(tmp_path):
    spec = Spec.from_dict(SMALL)
    assert Spec.from_dict(spec.to_dict()) == spec
    state = train(spec, tmp_path / "run", progress=False)
    metrics = metrics_log.as_arrays(metrics_log.read(tmp_path / "run" / "metrics.jsonl"))
    assert metrics["eval_loss"][-1] < 0.85 * metrics["eval_naive_loss"][-1]  # more ReLUs than neurons
    assert metrics["eval_loss"][-1] < 0.5 * metrics["eval_loss"][0]
    run = toymi.load_run(tmp_path / "run")
    assert run.spec == spec and isinstance(run.model, ResidualMLP)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(run.model), jax.tree.leaves(state.model),
                                                    strict=True))
    np.testing.assert_array_equal(run.model.W_E, state.model.W_E)
    effects = neuron_ablation_effects(run.model)
    assert int(neurons_used(effects).any(axis=(1, 2)).sum()) > 10  # more features served than there are neurons
    run.close()


class TestBadSettings:
    def test_every_problem_is_listed(self):
        with pytest.raises(ConfigError) as info:
            make_task("compressed_computation", n_features=0, feature_probability=1.5, batch_size=2.0)
        for text in ("n_features must be a positive integer", "feature_probability must be in (0, 1]",
                     "batch_size must be a positive integer"):
            assert text in str(info.value)

    def test_model_width_must_match_the_task(self):
        with pytest.raises(ConfigError, match="n_features=10 but task 'compressed_computation' needs 20"):
            Spec.from_dict({**SMALL, "model": {**SMALL["model"], "n_features": 10}})

    def test_transformer_kind_is_refused(self):
        with pytest.raises(ConfigError, match="trains models of kind"):
            Spec.from_dict({**SMALL, "model": {"kind": "transformer"}})


@pytest.mark.slow
def test_biases_are_zeroed_by_the_naive_model():
    config = ResidualMLPConfig(n_features=4, d_model=12, d_mlp=2, in_bias=True, out_bias=True)
    model = ResidualMLP(config, jax.random.PRNGKey(0))
    model = eqx.tree_at(lambda m: m.b_out, model, jnp.ones_like(model.b_out))
    naive = naive_model(model)
    np.testing.assert_array_equal(naive.b_out, 0.0)
    np.testing.assert_allclose(naive(jnp.zeros(4)), 0.0, atol=1e-6)
