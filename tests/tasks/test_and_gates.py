import itertools

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
from toymi.model.transformer import ModelConfig
from toymi.tasks.and_gates import encode_tokens, gate_pairs
from toymi.analysis.and_gates import (
    circuit_agreement, input_ablation_effects, neuron_interactions, neurons_per_gate,
)
from toymi.experiment import train
from toymi.train import metrics_log

CIRCUIT = [[0, 1], [2, 3], [1, 2]]
SMALL = {"task": {"name": "and_gates", "n_features": 5, "feature_probability": 0.4, "gates": "all",
                  "batch_size": 256, "n_eval": 1024},
         "model": {"d_model": 16, "d_mlp": 16, "in_bias": True, "unembed": "learned"},
         "train": {"steps": 300, "lr": 1e-2, "eval_every": 100, "checkpoint_every": 300}}


def test_gate_choices():
    assert gate_pairs(4, "all") == tuple(itertools.combinations(range(4), 2))
    subset = gate_pairs(10, 7, gate_seed=3)
    assert len(set(subset)) == 7 and all(0 <= a < b < 10 for a, b in subset)
    assert subset == gate_pairs(10, 7, gate_seed=3) and subset != gate_pairs(10, 7, gate_seed=4)
    assert gate_pairs(4, CIRCUIT) == ((0, 1), (2, 3), (1, 2))


def test_facts_of_a_hand_given_circuit():
    task = make_task("and_gates", n_features=4, gates=CIRCUIT)
    truth = task.facts()
    np.testing.assert_array_equal(truth["circuit"], [[1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 0]])
    np.testing.assert_array_equal(truth["pairs"], CIRCUIT)
    assert task.model_dims() == {"n_features": 4, "n_outputs": 3}


def test_sampler_statistics():
    task = make_task("and_gates", n_features=4, feature_probability=0.3, gates=CIRCUIT)
    batch = task.sample(jax.random.PRNGKey(0), 40_000)
    x, y = np.asarray(batch.x), np.asarray(batch.y)
    assert set(np.unique(x)) == {0.0, 1.0}
    assert abs(x.mean() - 0.3) < 0.01
    assert abs(y.mean() - 0.09) < 0.005  # independent inputs: P(a and b) = p²
    np.testing.assert_array_equal(y, np.stack([x[:, 0] * x[:, 1], x[:, 2] * x[:, 3], x[:, 1] * x[:, 2]], 1))


def exact_and_model(task, scale: float = 20.0):
    """A residual MLP computing every gate exactly: neuron k is ReLU(x_a + x_b - 1), written to a direction q_k
    outside the embedding's span, and read out as scale * (ReLU - 1/2)."""
    n, k = task.n_features, task.n_gates
    config = ResidualMLPConfig(n_features=n, d_model=16, d_mlp=k, n_outputs=k, unembed="learned", in_bias=True)
    model = ResidualMLP(config, jax.random.PRNGKey(0))
    read = jnp.linalg.pinv(model.W_E)  # [d_model, n]: (x W_E) @ read = x
    q = jnp.linalg.svd(model.W_E)[2][n:n + k]  # [k, d_model] orthonormal, orthogonal to every W_E row
    pairs = task.gate_inputs
    W_in = (read[:, pairs[:, 0]] + read[:, pairs[:, 1]])[None]
    return eqx.tree_at(lambda m: (m.W_in, m.b_in, m.W_out, m.learned_W_U, m.b_U), model,
                       (W_in, -jnp.ones((1, k)), q[None], scale * q.T, -scale / 2 * jnp.ones(k)))


@pytest.mark.slow
def test_ablation_recovers_the_circuit_of_an_exact_model():
    task = make_task("and_gates", n_features=4, feature_probability=0.5, gates=CIRCUIT)
    model = exact_and_model(task)
    batch = task.eval_batches()["eval"]
    metrics = task.evaluate(model, batch)
    assert float(metrics["accuracy"]) == 1.0 and float(metrics["on_accuracy"]) == 1.0
    effects = input_ablation_effects(task, model, batch)
    truth = task.facts()["circuit"]
    assert effects.shape == (3, 4)
    np.testing.assert_allclose(effects[truth], 1.0, atol=1e-3)  # removing an input turns the gate off
    np.testing.assert_allclose(effects[~truth], 0.0, atol=1e-6)
    np.testing.assert_allclose(circuit_agreement(effects, truth)["on_circuit"], 1.0, atol=1e-6)


def test_an_exact_models_neurons_each_make_one_gates_and():
    task = make_task("and_gates", n_features=4, gates=CIRCUIT)
    model = exact_and_model(task)
    interactions = neuron_interactions(task, model)  # ReLU(x_a + x_b - 1): 1 on its pair, 0 alone, 0 on the others
    np.testing.assert_allclose(interactions, np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(neurons_per_gate(interactions), [1, 1, 1])
    linear = eqx.tree_at(lambda m: m.b_in, model, jnp.ones_like(model.b_in))  # always active: adds, never ANDs
    np.testing.assert_allclose(neuron_interactions(task, linear), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="layer 1 is not one of the model's 1 layers"):
        neuron_interactions(task, model, layer=1)
    with pytest.raises(ValueError, match="reads a residual MLP's neurons"):
        neuron_interactions(task, object())


@pytest.mark.slow
def test_ablation_detects_a_dense_circuit():
    task = make_task("and_gates", n_features=4, feature_probability=0.5, gates=CIRCUIT)
    model = exact_and_model(task, scale=4.0)
    # make gate 0 also read input 3 directly: logit_0 -= 3 x_3
    model = eqx.tree_at(lambda m: m.learned_W_U, model,
                        model.learned_W_U.at[:, 0].add(-3.0 * jnp.linalg.pinv(model.W_E)[:, 3]))
    effects = input_ablation_effects(task, model)  # default: the eval set
    truth = task.facts()["circuit"]
    assert float(effects[0, 3]) > 0.1
    agreement = circuit_agreement(effects, truth)
    assert float(agreement["per_gate"][0]) < 0.9
    np.testing.assert_allclose(agreement["per_gate"][1:], 1.0, atol=1e-6)


@pytest.mark.slow
def test_a_small_model_learns_the_gates_and_reloads(tmp_path):
    spec = Spec.from_dict(SMALL)
    state = train(spec, tmp_path / "run", progress=False)
    metrics = metrics_log.as_arrays(metrics_log.read(tmp_path / "run" / "metrics.jsonl"))
    assert metrics["eval_on_accuracy"][-1] > 0.95  # all-off would score 0 here
    assert metrics["eval_accuracy"][-1] > 0.98  # and 1 - p² = 0.84 in total
    run = toymi.load_run(tmp_path / "run")
    assert run.spec == spec
    np.testing.assert_array_equal(run.model.learned_W_U, state.model.learned_W_U)
    run.close()


def test_a_circuit_given_in_the_spec_round_trips_through_toml(tmp_path):
    spec = Spec.from_dict({**SMALL, "task": {**SMALL["task"], "n_features": 4, "gates": CIRCUIT}})
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    loaded = Spec.load(tmp_path / "spec.toml")
    assert loaded == spec and loaded.model.n_outputs == 3
    assert loaded.build_task().pairs == ((0, 1), (2, 3), (1, 2))


TRANSFORMER = {"task": {"name": "and_gates", "n_features": 4, "feature_probability": 0.5, "gates": CIRCUIT,
                         "batch_size": 256, "n_eval": 512},
               "model": {"kind": "transformer", "n_layers": 1, "d_model": 32, "n_heads": 2, "d_mlp": 64},
               "train": {"steps": 200, "lr": 1e-2, "eval_every": 100, "checkpoint_every": 200}}


def test_token_encoding():
    x = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # position j holds 2j (off) or 2j + 1 (on); then the readout token 2 * n_features
    np.testing.assert_array_equal(encode_tokens(x), [[1, 2, 5, 6], [0, 2, 4, 6]])
    assert encode_tokens(x).dtype == jnp.int32
    np.testing.assert_array_equal(jax.jit(encode_tokens)(x[0]), [1, 2, 5, 6])  # one example, under jit


@pytest.mark.slow
def test_a_transformer_spec_round_trips_and_gets_the_task_dims(tmp_path):
    spec = Spec.from_dict(TRANSFORMER)
    assert isinstance(spec.model, ModelConfig)
    assert (spec.model.d_vocab, spec.model.d_vocab_out, spec.model.n_ctx) == (9, 3, 5)  # 2n + 1, n_gates, n + 1
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    loaded = Spec.load(tmp_path / "spec.toml")
    assert loaded == spec and 'kind = "transformer"' in spec.to_toml()
    assert make_task("and_gates", n_features=4, gates=CIRCUIT).model_dims_for("residual_mlp") == {
        "n_features": 4, "n_outputs": 3}  # the default kind keeps its dims
    assert Spec.from_dict(SMALL).model.n_outputs == 10  # and is still the default
    with pytest.raises(ConfigError, match="needs 3"):
        Spec.from_dict({**TRANSFORMER, "model": {**TRANSFORMER["model"], "d_vocab_out": 4}})


@pytest.mark.slow
def test_a_small_transformer_learns_the_gates(tmp_path):
    state = train(Spec.from_dict(TRANSFORMER), tmp_path / "run", progress=False)
    metrics = metrics_log.as_arrays(metrics_log.read(tmp_path / "run" / "metrics.jsonl"))
    assert metrics["eval_on_accuracy"][-1] > 0.9  # all-off would score 0
    assert metrics["eval_accuracy"][-1] > 0.95  # and 1 - p² = 0.75
    task = Spec.from_dict(TRANSFORMER).build_task()
    x = task.eval_batches()["eval"].x[:8]
    logits = eqx.filter_jit(task.gate_logits)(state.model, x)  # the logits at the readout (last) position
    assert logits.shape == (8, 3)
    full = eqx.filter_jit(lambda m, t: m(t))(state.model, encode_tokens(x))  # every position's logits
    np.testing.assert_allclose(logits, full[:, -1], rtol=1e-4, atol=1e-4)
    effects = input_ablation_effects(task, state.model)
    assert effects.shape == (3, 4) and bool(jnp.all((effects >= 0) & (effects <= 1)))
    # turning off an input of a gate that is on turns the gate off, in a model that computes the gate
    assert float(effects[task.facts()["circuit"]].mean()) > 0.8


class TestBadSettings:
    def test_bad_pairs_are_all_named(self):
        with pytest.raises(ConfigError) as info:
            make_task("and_gates", n_features=4, gates=[[0, 0], [1, 5], [2, 3], [3, 2], [1]])
        for text in ("[0, 0] ANDs a feature with itself", "[1, 5] has an index outside [0, 4)",
                     "[3, 2] appears twice", "[1] is not a pair"):
            assert text in str(info.value)

    def test_too_many_random_gates(self):
        with pytest.raises(ConfigError, match="between 1 and 6 pairs"):
            make_task("and_gates", n_features=4, gates=7)

    def test_other_settings(self):
        with pytest.raises(ConfigError) as info:
            make_task("and_gates", n_features=1, feature_probability=0.0, batch_size=0)
        for text in ("n_features must be an integer >= 2", "feature_probability must be in (0, 1]",
                     "batch_size must be a positive integer"):
            assert text in str(info.value)

    def test_a_fixed_unembedding_cannot_give_one_output_per_gate(self):
        with pytest.raises(ConfigError, match='set unembed = "learned"'):
            Spec.from_dict({**SMALL, "model": {"d_model": 16, "d_mlp": 16}})
