"""The addition model's per-head truth: heads judged from attention to a digit's own positions, and the scoring of a
method's edge scores against them."""

from types import SimpleNamespace

import numpy as np
import pytest

from toymi.circuits.digit_heads import head_result, head_rows, head_truth, judged_edges, markdown
from toymi.circuits.digit_positions import digit_groups
from toymi.circuits.forward import graph_of
from toymi.model.transformer import ModelConfig

CONFIG = ModelConfig(n_layers=2, d_model=16, n_heads=3, d_head=4, d_mlp=16, d_vocab=12, d_vocab_out=10, n_ctx=18)


def _truth():
    """Digit 1 of 5 (a_1 at 3, b_1 at 9, predicted at 15): in layer 0, head 0 reads a_1 (0.9), head 1 b_1 (exactly
    0.3, the threshold), head 2 a little of both (0.2 each); in layer 1, head 2 reads b_1 (0.6)."""
    pattern = np.zeros((2, 2, 3, 18, 18))  # [batch, layer, head, query, key]
    pattern[:, 0, 0, 15, 3], pattern[:, 0, 1, 15, 9] = 0.9, [0.1, 0.5]  # L0H1: 0.3 on average
    pattern[:, 0, 2, 15, [3, 9]] = 0.2
    pattern[:, 1, 2, 15, 9] = 0.6
    pattern[:, 0, 0, 14, 9] = pattern[:, 1, 1, 14, 3] = 1.0  # another query position: not read
    return head_truth(pattern, 1, 15, digit_groups(5, 1)["own"])


def test_the_heads_judged_to_carry_each_operand_are_those_attending_to_it_from_the_predicting_position():
    truth = _truth()
    assert truth.positions == (3, 9) and truth.heads == (((0, 0),), ((0, 1), (1, 2)))
    assert truth.attention.shape == (2, 2, 3)  # [own position, layer, head]
    np.testing.assert_allclose(truth.attention, [[[0.9, 0.0, 0.2], [0.0, 0.0, 0.0]],
                                                 [[0.0, 0.3, 0.2], [0.0, 0.0, 0.6]]])
    assert head_truth(np.zeros((2, 2, 3, 18, 18)), 1, 15, np.array([3, 9])).heads == ((), ())
    with pytest.raises(ValueError, match="layer, head, query, key"):  # one layer's pattern: which layer is unknown
        head_truth(np.zeros((2, 3, 18, 18)), 1, 15, np.array([3, 9]))


def test_a_methods_edge_scores_are_ranked_on_the_judged_value_edges_against_the_other_heads():
    graph, truth = graph_of(CONFIG, 18), _truth()
    judged, others = judged_edges(graph, truth)
    names = [(graph.senders[s], graph.receivers[r]) for s, r in graph.edges[np.concatenate([judged, others])]]
    assert names[:3] == [("input[3]", "a0.h0<v>"), ("input[9]", "a0.h1<v>"), ("input[9]", "a1.h2<v>")]
    assert sorted(names[3:]) == [("input[3]", f"a{l}.h{h}<v>") for l, h in ((0, 1), (0, 2), (1, 0), (1, 1), (1, 2))] \
        + [("input[9]", f"a{l}.h{h}<v>") for l, h in ((0, 0), (0, 2), (1, 0), (1, 1))]
    scores, circuit = np.zeros(graph.n_edges), np.zeros(graph.n_edges, bool)
    scores[judged], circuit[judged] = [2.0, -2.0, 2.5], True  # magnitudes count
    scores[others[0]] = 1.0
    r = head_result(graph, SimpleNamespace(method="made", scores=scores, circuit=circuit), truth)
    assert r.auc == 1.0 and r.keeps_judged
    scores[others[1]], circuit[judged[2]] = -3.0, False  # one other edge above every judged one
    r = head_result(graph, SimpleNamespace(method="made", scores=scores, circuit=circuit), truth)
    assert r.auc == pytest.approx(24 / 27) and not r.keeps_judged
    row = head_rows([truth], [r])[0]
    assert row["heads"] == [[[0, 0]], [[0, 1], [1, 2]]]
    assert row["methods"]["made"] == {"auc": pytest.approx(24 / 27), "keeps_judged": False}
    assert markdown([row]).splitlines()[-1] == "| s_1 | L0H0 (0.90) | L0H1 (0.30), L1H2 (0.60) | 0.889 |"
