"""Transformer attribution graphs scored against the AND gates' circuits: exact on the hand-written solution, a
rewired gate caught, and clear errors."""

import equinox as eqx
import jax
import numpy as np
import pytest

from toymi.circuits.gate_graphs import gate_graph_scores
from toymi.circuits.planted import and_gates_solution
from toymi.circuits.frozen_transformer import neuron_transcoders
from toymi.errors import ConfigError
from toymi.tasks.and_gates import AndGates

TASK = AndGates(n_features=5, feature_probability=0.5, n_eval=64)  # 10 gates
BATCH = TASK.sample(jax.random.PRNGKey(0), 256)


@pytest.mark.slow
def test_the_hand_written_solution_puts_every_gates_attribution_on_its_two_inputs():
    model = and_gates_solution(TASK)
    scores = gate_graph_scores(model, TASK, neuron_transcoders(model), BATCH)
    for name in ("none", "all off"):
        r = scores[name]
        assert r["auc"] == [1.0] * 10 and np.allclose(r["on_true"], 1.0), name
        assert np.allclose(r["latent_share"], 1.0) and max(r["error_share"]) == 0.0  # all through its gate neuron
        assert r["completeness_gap"] < 1e-4
        assert min(r["examples"]) > 30  # each gate on in ~64 of 256 inputs
    assert scores["ablation"]["auc"] == [1.0] * 10


def test_a_gate_wired_to_the_wrong_input_is_caught():
    """Gate 0 of the solution is (x0, x1); give its neuron gate 3's input weights, which read (x0, x4): its
    attribution moves from position 1 to position 4, its AUC against the task's (x0, x1) drops, and the other gates
    stay exact."""
    assert TASK.pairs[0] == (0, 1) and TASK.pairs[3] == (0, 4)
    model = and_gates_solution(TASK)
    W_in = model.blocks.mlp.W_in  # [layer, d_model, gate neuron]
    broken = eqx.tree_at(lambda m: m.blocks.mlp.W_in, model, W_in.at[0, :, 0].set(W_in[0, :, 3]))
    scores = gate_graph_scores(broken, TASK, neuron_transcoders(broken), BATCH, baselines=("all off",))["all off"]
    assert scores["auc"][0] < 1.0 and scores["auc"][1:] == [1.0] * 9
    assert scores["on_true"][0] < 0.75 and np.allclose(scores["on_true"][1:], 1.0)


def test_what_the_gate_graphs_refuse():
    from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig

    mlp = ResidualMLP(ResidualMLPConfig(n_features=5, d_model=8, d_mlp=10), jax.random.PRNGKey(0))
    with pytest.raises(ConfigError, match="need an AND-gate transformer"):
        gate_graph_scores(mlp, TASK, None, BATCH)
    model = and_gates_solution(TASK)
    with pytest.raises(ValueError, match="unknown baselines"):
        gate_graph_scores(model, TASK, neuron_transcoders(model), BATCH, baselines=("zero",))
