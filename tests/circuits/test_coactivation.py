"""Co-activation clusters scored against known circuits (`toymi.circuits.coactivation`) on hand-made units: AND gates
(two inputs each) and one-input circuits (compressed computation)."""

import numpy as np
import pytest

from toymi.circuits.coactivation import (
    anchored_clusters, coactivation, conditions, input_coverage, input_links, score_circuit_clusters,
)
from toymi.tasks.and_gates import circuit_matrix

PAIRS = np.array([(0, 1), (0, 2), (1, 2), (2, 3)])
GATES = circuit_matrix(PAIRS, 4)


def sparse_inputs(n=4000, n_inputs=4, p=0.3, seed=0):
    return np.random.default_rng(seed).random((n, n_inputs)) < p


def circuit_units(x_on):
    """The circuit itself as units: one per input, one per gate (on when both its inputs are)."""
    return np.concatenate([x_on, x_on[:, PAIRS[:, 0]] & x_on[:, PAIRS[:, 1]]], axis=1)


def scores(active, x_on, tau=0.9):
    p = coactivation(active)
    cond = conditions(active, x_on, tau)
    return score_circuit_clusters(anchored_clusters(p, tau), cond, GATES), input_links(p, cond, GATES)


def test_coactivation_is_the_conditional_frequency_and_nan_for_rare_units():
    active = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]], bool)
    p = coactivation(active, min_count=2)
    np.testing.assert_allclose(p[0], [1, 2 / 3, 1 / 3])
    np.testing.assert_allclose(p[1], [2 / 3, 1, 1 / 3])
    assert np.isnan(p[2]).all()  # active once: below min_count
    assert anchored_clusters(p, 0.6) == [(0, 1)]  # the anchors 0 and 1 give the same cluster, kept once


def test_the_circuit_as_units_recovers_every_gate_with_one_cluster_each():
    x_on = sparse_inputs()
    s, links = scores(circuit_units(x_on), x_on)
    assert s["circuits_recovered"] == s["circuits_with_unit"] == s["inputs_with_unit"] == 1.0
    assert s["clusters_per_recovered_circuit"] == 1.0
    np.testing.assert_allclose(links, 1.0)


def test_without_input_units_no_gate_is_recovered_though_every_interaction_has_a_unit():
    x_on = sparse_inputs()
    s, links = scores(circuit_units(x_on)[:, 4:], x_on)
    assert s["circuits_recovered"] == 0.0 and s["circuits_with_unit"] == 1.0 and s["inputs_with_unit"] == 0.0
    np.testing.assert_allclose(links, 0.0)


def test_input_units_that_split_their_input_lower_the_link_and_fail_the_gate():
    """Input a's two units each fire on half of a's examples (split by a coin): an interaction unit co-fires with
    each about half the time, so the link is ~0.5 and no cluster at tau 0.9 holds the gate's inputs."""
    x_on = sparse_inputs(n=20_000)
    coin = np.random.default_rng(1).random(len(x_on)) < 0.5
    units = circuit_units(x_on)
    split = np.concatenate([units[:, :1] & coin[:, None], units[:, :1] & ~coin[:, None], units[:, 1:]], axis=1)
    s, links = scores(split, x_on)
    assert s["circuits_recovered"] == 0.5  # the gates (1, 2) and (2, 3) do not read input 0
    np.testing.assert_allclose(links[:2], 0.5, atol=0.05)
    np.testing.assert_allclose(links[2:], 1.0)
    np.testing.assert_allclose(input_coverage(split, x_on, conditions(split, x_on)), 1.0)  # together they cover it


def test_coverage_counts_only_units_of_the_input_alone():
    """Input 0's unit fires only when input 1 is off; with 1 on its part is absorbed into the pair's unit."""
    x_on = sparse_inputs(n=20_000)
    units = circuit_units(x_on)
    units[:, 0] &= ~x_on[:, 1]
    coverage = input_coverage(units, x_on, conditions(units, x_on))
    np.testing.assert_allclose(coverage[0], 0.7, atol=0.02)  # P(input 1 off)
    np.testing.assert_allclose(coverage[1:], 1.0)


def test_a_cluster_holding_another_inputs_unit_does_not_recover_the_gate():
    cond = np.zeros((5, 4), bool)
    cond[0, [0, 1]] = cond[1, 0] = cond[2, 1] = cond[3, 3] = True  # interaction (0, 1), inputs 0, 1, 3
    assert score_circuit_clusters([(0, 1, 2, 3)], cond, GATES)["circuits_recovered"] == 0.0
    assert score_circuit_clusters([(0, 1, 2, 3), (0, 1, 2)], cond, GATES)["circuits_recovered"] == 0.25


def test_one_input_circuits_need_one_pure_cluster_per_input_and_count_split_units():
    """Compressed computation's circuits: output i reads feature i alone. A feature carried by two units that never
    fire together is still recovered, by two clusters; a unit that fires for two features recovers neither."""
    x_on = sparse_inputs(n=20_000, p=0.05)
    coin = np.random.default_rng(2).random(len(x_on)) < 0.5
    split = np.concatenate([x_on[:, :1] & coin[:, None], x_on[:, :1] & ~coin[:, None], x_on[:, 1:]], axis=1)
    features = np.eye(4, dtype=bool)
    p, cond = coactivation(split), conditions(split, x_on)
    s, links = score_circuit_clusters(anchored_clusters(p, 0.9), cond, features), input_links(p, cond, features)
    assert s["circuits_recovered"] == s["circuits_with_unit"] == 1.0
    assert s["clusters_per_recovered_circuit"] == (2 + 1 + 1 + 1) / 4
    np.testing.assert_allclose(links, 1.0)
    merged = np.concatenate([x_on[:, :1] | x_on[:, 1:2], x_on[:, 2:]], axis=1)  # features 0 and 1 share a unit
    cond = conditions(merged, x_on)
    s = score_circuit_clusters(anchored_clusters(coactivation(merged), 0.9), cond, features)
    assert s["circuits_recovered"] == 0.5 and s["inputs_with_unit"] == 0.5


def test_bad_shapes_and_indices_are_one_line_errors():
    with pytest.raises(ValueError, match="share their examples"):
        conditions(np.zeros((5, 3), bool), np.zeros((4, 2), bool))
    with pytest.raises(ValueError, match="circuits must be"):
        score_circuit_clusters([(0,)], np.zeros((2, 3), bool), np.array([(0, 3)]))
    with pytest.raises(ValueError, match="circuits must be"):  # a circuit that reads no input
        score_circuit_clusters([(0,)], np.zeros((2, 3), bool), np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match="outside the 2 units"):
        score_circuit_clusters([(0, 2)], np.zeros((2, 3), bool), np.eye(3, dtype=bool)[:1])
    with pytest.raises(ValueError, match="tau"):
        anchored_clusters(np.ones((2, 2)), 0.0)
