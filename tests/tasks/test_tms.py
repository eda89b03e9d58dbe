import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi import ConfigError, Spec
from toymi.model.tms import TMS, TMSConfig
from toymi.tasks import make_task
from toymi.tasks.features import FeatureBatch
from toymi.tasks.tms import ToyModelsOfSuperposition, importance_weights, sample_features
from toymi.analysis.tms import (
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    geometry,
    superposition,
)
from toymi.experiment.sweep import Sweep
from toymi.experiment import make_optimizer, train
from toymi.train import init_state, make_train_chunk
from toymi.experiment.ensemble import stack_tasks

N = 100_000  # samples for the statistics below: a rate p has standard error sqrt(p(1-p)/N) <= 0.0016


def active(x):
    return np.asarray(x) != 0


# ---- sampler -------------------------------------------------------------------------------------------------------

def test_independent_features_are_uniform_when_active_with_probability_p():
    x = np.asarray(sample_features(jax.random.PRNGKey(0), N, 4, 0.1))
    assert x.shape == (N, 4) and (x >= 0).all() and (x < 1).all()
    np.testing.assert_allclose(active(x).mean(0), 0.1, atol=0.005)
    nonzero = x[x != 0]
    np.testing.assert_allclose([nonzero.mean(), nonzero.var()], [0.5, 1 / 12], atol=0.005)  # U[0, 1)
    # independent: P(both active) ≈ p²
    np.testing.assert_allclose((active(x)[:, 0] & active(x)[:, 1]).mean(), 0.01, atol=0.002)


@pytest.mark.slow
def test_correlated_pairs_fire_together_and_anticorrelated_pairs_never_do():
    x = active(sample_features(jax.random.PRNGKey(1), N, 9, 0.2, n_correlated_pairs=2, n_anticorrelated_pairs=2))
    np.testing.assert_allclose(x.mean(0), 0.2, atol=0.005)  # every feature keeps its marginal probability
    for a, b in [(0, 1), (2, 3)]:  # correlated: both or neither
        assert (x[:, a] == x[:, b]).all()
    for a, b in [(4, 5), (6, 7)]:  # anticorrelated: never both, each still active with probability p
        assert not (x[:, a] & x[:, b]).any()
        np.testing.assert_allclose((x[:, a] | x[:, b]).mean(), 0.4, atol=0.005)
    # different pairs, and the pairs and the lone feature 8, are independent
    np.testing.assert_allclose((x[:, 0] & x[:, 2]).mean(), 0.04, atol=0.003)
    np.testing.assert_allclose((x[:, 4] & x[:, 8]).mean(), 0.04, atol=0.003)


@pytest.mark.slow
def test_training_batches_are_fresh_and_static_in_shape_under_jit():
    task = ToyModelsOfSuperposition(n_features=7, feature_probability=0.3, batch_size=64, eval_size=100)
    draw = jax.jit(lambda t, k: t.train_batch(k).x)
    a, b = draw(task, jax.random.PRNGKey(0)), draw(task, jax.random.PRNGKey(1))
    assert a.shape == b.shape == (64, 7) and not np.array_equal(a, b)
    assert task.eval_batches()["test"].x.shape == (100, 7)
    same_seed = ToyModelsOfSuperposition(n_features=7, feature_probability=0.3, eval_size=100)
    np.testing.assert_array_equal(task.test.x, same_seed.test.x)  # the test set depends only on data_seed


# ---- importance and loss -------------------------------------------------------------------------------------------

def test_importance_settings():
    np.testing.assert_allclose(importance_weights(4, decay=0.9), [1, 0.9, 0.81, 0.729])
    np.testing.assert_allclose(importance_weights(100, last=0.01), 100.0 ** -np.linspace(0, 1, 100), rtol=1e-12)
    np.testing.assert_allclose(importance_weights(3, given=[3, 2, 1]), [3, 2, 1])
    np.testing.assert_allclose(importance_weights(3), [1, 1, 1])
    task = make_task("tms", n_features=3, importance=[3.0, 2.0, 1.0], eval_size=10)
    np.testing.assert_allclose(task.facts()["importance"], [3, 2, 1])


def test_loss_is_importance_weighted_squared_error_and_relative_to_zero_output():
    task = ToyModelsOfSuperposition(n_features=3, importance_decay=0.5, eval_size=10)
    x = jnp.array([[1.0, 0.0, 0.5], [0.0, 0.2, 0.0]])
    batch = FeatureBatch(x=x, y=x)

    def constant(value):  # a stand-in model answering `value` for every example
        return lambda x: jnp.broadcast_to(jnp.asarray(value), x.shape)

    expected = np.mean(np.array([1, 0.5, 0.25]) * (np.asarray(batch.x) - [0.5, 0.0, 0.5]) ** 2)
    np.testing.assert_allclose(task.loss(constant([0.5, 0.0, 0.5]), batch), expected, rtol=1e-6)
    metrics = task.evaluate(constant(0.0), batch)
    np.testing.assert_allclose(metrics["loss_fraction"], 1.0)
    np.testing.assert_allclose(metrics["loss"], np.mean([1, 0.5, 0.25] * np.asarray(batch.x) ** 2), rtol=1e-6)


@pytest.mark.slow
def test_facts():
    task = ToyModelsOfSuperposition(n_features=7, n_correlated_pairs=1, n_anticorrelated_pairs=2, eval_size=10)
    truth = task.facts()
    np.testing.assert_array_equal(truth["feature_directions"], np.eye(7))
    np.testing.assert_array_equal(truth["correlated_pairs"], [[0, 1]])
    np.testing.assert_array_equal(truth["anticorrelated_pairs"], [[2, 3], [4, 5]])
    assert task.model_dims() == {"n_features": 7} and task.model_kinds == ("tms",)


# ---- geometry ------------------------------------------------------------------------------------------------------

def test_orthogonal_features_have_a_dimension_each():
    W = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # feature 2 is dropped
    np.testing.assert_allclose(feature_dimensionality(W), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(superposition(W), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(feature_norms(W), [2.0, 1.0, 0.0])
    np.testing.assert_allclose(dimensions_per_feature(W), 2 / 5)


def test_antipodal_pair_shares_one_dimension():
    W = jnp.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # features 0, 1 antipodal; 2 alone
    np.testing.assert_allclose(feature_dimensionality(W), [0.5, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(superposition(W), [1.0, 1.0, 0.0], atol=1e-6)


def test_pentagon_gives_two_fifths_of_a_dimension_each():
    angles = 2 * np.pi * np.arange(5) / 5
    W = 1.3 * jnp.asarray(np.stack([np.cos(angles), np.sin(angles)]), jnp.float32)  # any common norm
    g = geometry(W)
    np.testing.assert_allclose(g["feature_dimensionality"], 0.4, atol=1e-6)
    np.testing.assert_allclose(g["feature_norms"], 1.3, atol=1e-6)
    np.testing.assert_allclose(g["superposition"], 1.3**2 * 1.5, rtol=1e-5)  # Σ_{j≠i} cos²(2πk/5) = 3/2
    np.testing.assert_allclose(g["dimensions_per_feature"], 2 / (5 * 1.3**2), rtol=1e-6)


# ---- learning and the engine -------------------------------------------------------------------------------------

TINY = {
    "task": {"name": "tms", "n_features": 5, "feature_probability": 0.05, "importance_decay": 0.9,
             "batch_size": 256, "eval_size": 2000},
    "model": {"kind": "tms", "d_hidden": 2},
    "train": {"steps": 600, "lr": 1e-2, "eval_every": 200, "checkpoint_every": 600},
}


@pytest.mark.slow
def test_a_tiny_model_learns_superposition_within_seconds():
    spec = Spec.from_dict(TINY)
    task, optimizer = spec.build_task(), make_optimizer(spec.train)
    state = init_state(spec.model, optimizer, seed=0)
    before = task.evaluate(state.model, task.test)
    state, losses = make_train_chunk(optimizer, 600)(state, task)
    after = task.evaluate(state.model, task.test)
    assert float(after["loss_fraction"]) < 0.2 < float(before["loss_fraction"])
    # 5 features in 2 dimensions at 95% sparsity: every feature is kept, so they must share the dimensions
    g = geometry(state.model.W)
    assert (g["feature_norms"] > 0.8).all() and float(g["feature_dimensionality"].max()) < 0.6


@pytest.mark.slow
def test_spec_round_trips_trains_and_load_run_restores(tmp_path):
    spec = Spec.from_dict(TINY)
    assert isinstance(spec.model, TMSConfig) and spec.model.n_features == 5  # filled in from the task
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    assert Spec.load(tmp_path / "spec.toml") == spec
    state = train(spec, tmp_path / "run", progress=False)
    run = toymi.load_run(tmp_path / "run")
    assert run.spec == spec and run.steps == [0, 600]
    assert isinstance(run.model, TMS)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(run.model), jax.tree.leaves(state.model),
                                                   strict=True))
    assert list(run.metrics["step"]) == [0, 200, 400, 600]
    assert run.metrics["test_loss_fraction"][-1] < 0.5 * run.metrics["test_loss_fraction"][0]
    series = run.checkpoint_series()
    assert series.W.shape == (2, 2, 5)
    run.close()


@pytest.mark.slow
def test_hidden_identity_variant_trains_through_a_spec(tmp_path):
    fixed = Spec.from_dict({**TINY, "model": {**TINY["model"], "hidden_identity": True}})
    trained = Spec.from_dict({**TINY, "model": {**TINY["model"], "hidden_identity": True,
                                                "hidden_identity_trainable": True}})
    assert Spec.from_dict(trained.to_dict()) == trained
    optimizer = make_optimizer(fixed.train)
    chunk = make_train_chunk(optimizer, 50)
    fixed_state, _ = chunk(init_state(fixed.model, optimizer, seed=0), fixed.build_task())
    trained_state, _ = chunk(init_state(trained.model, optimizer, seed=0), trained.build_task())
    np.testing.assert_array_equal(fixed_state.model.W_hidden, np.eye(2))
    assert float(jnp.abs(trained_state.model.W_hidden - jnp.eye(2)).max()) > 1e-3


# ---- errors --------------------------------------------------------------------------------------------------------

def test_bad_settings_list_every_problem():
    with pytest.raises(ConfigError) as info:
        ToyModelsOfSuperposition(n_features=4, feature_probability=1.5, importance_decay=0.9, importance_last=0.1,
                                 n_correlated_pairs=2, n_anticorrelated_pairs=1, batch_size=0, data_seed=-1)
    message = str(info.value)
    for expected in ("feature_probability must be in (0, 1], got 1.5",
                     "set at most one of importance_decay, importance_last and importance",
                     "2 correlated and 1 anticorrelated pairs need 6 features, more than n_features=4",
                     "anticorrelated pairs need feature_probability <= 0.5",
                     "batch_size must be a positive integer, got 0",
                     "data_seed must be an integer >= 0, got -1"):
        assert expected in message
    with pytest.raises(ConfigError, match="importance must be a list of n_features=3 numbers"):
        ToyModelsOfSuperposition(n_features=3, importance=[1.0, 2.0])
    with pytest.raises(ConfigError, match="importance_decay must be a positive number"):
        ToyModelsOfSuperposition(importance_decay=0)
    with pytest.raises(KeyError, match=r"unknown settings \['sparsity'\]"):
        make_task("tms", sparsity=0.9)


@pytest.mark.parametrize("model,message", [
    ({"kind": "tms", "d_hidden": 2, "n_features": 6}, "n_features=6 but task 'tms' needs 5"),
    ({"kind": "tms"}, r"needs \['d_hidden'\]"),
    ({"kind": "transformer", "d_model": 8}, r"trains models of kind \['tms'\], not 'transformer'"),
])
def test_bad_specs(model, message):
    with pytest.raises((ConfigError, KeyError), match=message):
        Spec.from_dict({**TINY, "model": model})


def test_shipped_specs_are_what_they_say():
    root = Path(__file__).parents[2] / "tasks"
    big = Spec.load(root / "tms_100_20.toml")
    assert (big.model.n_features, big.model.d_hidden) == (100, 20)
    np.testing.assert_allclose(big.build_task().feature_importance, 100.0 ** -np.linspace(0, 1, 100), rtol=1e-5)
    pentagon = Spec.load(root / "tms.toml")
    assert (pentagon.model.n_features, pentagon.model.d_hidden, pentagon.train.steps) == (5, 2, 10_000)
    assert (pentagon.train.lr, pentagon.task["batch_size"]) == (1e-3, 1024)
    np.testing.assert_allclose(pentagon.build_task().feature_importance, 0.9 ** np.arange(5), rtol=1e-6)
    assert math.isclose(Spec.load(root / "tms_quick.toml").task["feature_probability"], 0.05)


@pytest.mark.slow
def test_a_sweep_varies_importance_and_density_together():
    # The phase diagram's sweep (tasks/tms_phase.toml): importance_decay = r gives importances [1, r], and the
    # importances, like the density, are arrays of the task, so both vary across the members of one vmapped run.
    root = Path(__file__).parents[2] / "tasks"
    grid = ["task.importance_decay=0.1,10", "task.feature_probability=1,0.01"]
    sweep = Sweep.from_args(root / "tms_phase.toml", grid, overrides=["task.eval_size=20"])
    task = stack_tasks(sweep.member_specs())
    np.testing.assert_allclose(task.feature_importance, [[1, 0.1], [1, 0.1], [1, 10], [1, 10]], rtol=1e-6)
    np.testing.assert_allclose(task.feature_probability, [1, 0.01, 1, 0.01], rtol=1e-6)
    phase = Spec.load(root / "tms_phase.toml")
    assert (phase.model.n_features, phase.model.d_hidden, phase.train.steps) == (2, 1, 10_000)
    densities = Spec.load(root / "tms_5_2_densities.toml")
    assert (densities.model.n_features, densities.model.d_hidden, densities.train.lr) == (5, 2, 1e-3)
