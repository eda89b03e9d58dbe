"""The AND-gate SPD truth's scores on hand-made importances and reads, and on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.scoring import exclusive
from toymi.decompose.parameters.truths_and_gates import gate_scores, input_reads, own_gates, per_input
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig

PAIRS = np.array([[0, 1], [0, 2], [1, 2]])


def _hand_made():
    """C = 5 subcomponents over 3 inputs: 0 is gate (0, 1)'s alone; 1 matters for gates (0, 2) and (1, 2) both (not
    exclusive); 2 is input 2's alone; 3 matters for gate (1, 2) and for input 1 alone (not exclusive); 4 never."""
    ci_pairs = np.zeros((3, 5))
    ci_pairs[0, 0] = 0.9
    ci_pairs[1, 1] = ci_pairs[2, 1] = 1.0
    ci_pairs[2, 3] = 0.7
    ci_singles = np.zeros((3, 5))
    ci_singles[2, 2] = 0.6
    ci_singles[1, 3] = 0.8
    reads = np.zeros((5, 3))
    reads[0] = [2.0, 0.0, 1.0]  # (4 + 0) / (4 + 0 + 1) = 0.8 of its read on gate (0, 1)'s inputs
    reads[1:] = 1.0
    return ci_pairs, ci_singles, reads


def test_exclusive_subcomponents_matter_on_one_pattern_only():
    ci_pairs, ci_singles, _ = _hand_made()
    own = exclusive(np.concatenate([ci_pairs, ci_singles]))
    assert sorted(zip(*np.nonzero(own))) == [(0, 0), (5, 2)]  # gate (0, 1) owns 0; input 2 (row 3 + 2) owns 2


def test_gate_scores_by_hand():
    scores = gate_scores(*_hand_made(), PAIRS)
    assert scores["gates_found"] == pytest.approx(1 / 3)
    assert scores["reads_own_inputs"] == pytest.approx(0.8)
    assert scores["inputs_found"] == pytest.approx(1 / 3)
    assert scores["success"] == 0.0  # two of the three gates have no exclusive subcomponent


def test_a_higher_threshold_finds_less_and_no_gate_gives_nan():
    scores = gate_scores(*_hand_made(), PAIRS, threshold=0.95)
    assert scores["gates_found"] == 0.0 and np.isnan(scores["reads_own_inputs"]) and scores["inputs_found"] == 0.0


def test_shapes_that_do_not_fit_are_refused():
    ci_pairs, ci_singles, reads = _hand_made()
    with pytest.raises(ValueError, match="shapes do not fit"):
        gate_scores(ci_pairs, ci_singles, reads.T, PAIRS)
    with pytest.raises(ValueError, match="shapes do not fit"):
        gate_scores(ci_pairs[:2], ci_singles, reads, PAIRS)


def test_a_subcomponent_that_reads_one_embedding_row_reads_that_input():
    model = ResidualMLP(ResidualMLPConfig(n_features=4, d_model=16, d_mlp=3, embedding="orthogonal"),
                        jax.random.PRNGKey(0))
    V = jnp.stack([model.W_E[2], model.W_E[0] + model.W_E[3]], axis=1)  # [d_model, C = 2]
    reads = input_reads(model, Subcomponents(U=jnp.zeros((3, 2)), V=V))
    np.testing.assert_allclose(reads, [[0, 0, 1, 0], [1, 0, 0, 1]], atol=1e-6)


@pytest.mark.slow
def test_the_transformer_score_reads_the_mlp_at_the_readout():
    from toymi.decompose.parameters.importance import ImportanceMLPs
    from toymi.decompose.parameters.losses import SPDParams
    from toymi.decompose.parameters.targets import model_targets
    from toymi.decompose.parameters.truths_and_gates import score_and_gates_transformer
    from toymi.model.transformer import ModelConfig, Transformer
    from toymi.tasks.and_gates import AndGates

    task = AndGates(n_features=3, gates="all")
    dims = task.model_dims_for("transformer")
    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=4, d_mlp=4, normalization="none",
                                    **dims), jax.random.PRNGKey(0))

    def params(level):  # C = 3 random subcomponents per matrix, importance 1 (level 5) or 0 (level -5) everywhere
        comps = tuple(Subcomponents(jax.random.normal(jax.random.PRNGKey(1), (t.get(model).shape[0], 3)),
                                    jax.random.normal(jax.random.PRNGKey(2), (t.get(model).shape[1], 3)))
                      for t in model_targets(model))
        return SPDParams(comps, tuple(ImportanceMLPs(*(jnp.zeros((3, 2)),) * 3, jnp.full(3, level)) for _ in comps))

    on, off = score_and_gates_transformer(model, task, params(5.0)), score_and_gates_transformer(model, task,
                                                                                                params(-5.0))
    assert on["W_in.0_alive"] == on["W_O.0_alive"] == 3 and off["W_in.0_alive"] == 0
    assert on["gates_found"] == off["gates_found"] == 0  # important everywhere or nowhere: never a gate's own
    assert np.isnan(on["reads_own_inputs"])
    with pytest.raises(ValueError, match="1-layer AND-gate transformer"):
        score_and_gates_transformer(Transformer(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=4, d_mlp=4,
                                                            **dims), jax.random.PRNGKey(0)), task, params(5.0))


def test_gate_patterns_are_each_pair_on_then_each_input_alone():
    from toymi.tasks.and_gates import gate_patterns

    np.testing.assert_array_equal(gate_patterns(PAIRS, 3), [[1, 1, 0], [1, 0, 1], [0, 1, 1],
                                                           [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_per_input_and_own_gates_by_hand():
    # rows: pairs (0, 1), (0, 2), (1, 2), then inputs 0, 1, 2 alone; C = 4
    ci = np.zeros((6, 4))
    ci[[0, 1, 3], 0] = 0.9  # input 0's own: important on exactly the patterns holding 0
    ci[[0, 2, 4], 1] = 0.8  # input 1's
    ci[[1, 2, 5], 2] = 0.7  # input 2's, but also important on pair (0, 1): not its own
    ci[0, 2] = 0.6
    ci[2, 3] = 1.0  # gate (1, 2)'s alone
    pairs, rows = PAIRS, (ci[:3], ci[3:])
    assert per_input(*rows, pairs) == pytest.approx(2 / 3)
    assert own_gates(*rows) == pytest.approx(1 / 3)
    ci[1, 0] = 0.4  # input 0's subcomponent no longer important on pair (0, 2): no longer input 0's own
    assert per_input(ci[:3], ci[3:], pairs) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="pairs must be"):
        per_input(ci[:3], ci[3:], PAIRS[:2])
