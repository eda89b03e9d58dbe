"""EAP is the first-order term of exact edge patching; ACDC and exact patching recover planted circuits; scoring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.attribution import eap, edges_from_nodes
from toymi.circuits.forward import graph_of
from toymi.circuits.methods import discover
from toymi.circuits.patching import edge_patching, one_hot_ablation, setup
from toymi.circuits.planted import copy_first
from toymi.circuits.scoring import faithfulness_curve, roc_auc
from toymi.circuits.acdc import _metric_with
from toymi.dissect.metrics import LogitDiff
from toymi.model.transformer import ModelConfig
from toymi.model.transformer import Transformer


@pytest.mark.slow
def test_eap_is_the_first_order_term_of_exact_patching():
    config = ModelConfig(d_vocab=7, n_ctx=5, n_layers=2, d_model=16, n_heads=2, normalization="layernorm",
                         act_fn="gelu")
    model = Transformer(config, jax.random.key(0))
    clean = jax.random.randint(jax.random.key(1), (2, 5), 0, 7)
    corrupted = jax.random.randint(jax.random.key(2), (2, 5), 0, 7)
    metric = LogitDiff(jnp.array([1, 2]), jnp.array([4, 5]))
    s = setup(model, clean, corrupted, direction="noising")
    graph = graph_of(config)
    scores = eap(model, *s, metric)
    base = float(_metric_with(model, *s, metric, jnp.zeros(graph.valid.shape)))
    chosen = [0, 7, 15, 20, 33, graph.n_edges - 1]
    errors = {}
    for scale in (0.1, 0.01):
        slopes = [(float(_metric_with(model, *s, metric, scale * one_hot_ablation(graph, jnp.asarray(graph.edges[e]))))
                   - base) / scale for e in chosen]
        errors[scale] = np.abs(np.array(slopes) - scores[chosen]).max()
    assert np.abs(scores[chosen]).max() > 0.01  # the comparison is not between zeros
    assert errors[0.01] < 2e-3
    assert errors[0.01] < errors[0.1]  # the patch's finite difference converges on EAP as the scale goes to 0
    # At full scale, EAP is not exact here (layernorm, gelu, attention): the exact effects differ.
    exact = np.asarray(edge_patching(model, clean, corrupted, metric, direction="noising").effect)
    assert np.abs(exact - scores).max() > 1e-3


@pytest.fixture(scope="module")
def planted():
    p = copy_first()
    return p, setup(p.model, p.clean, p.corrupted, direction="noising", ablation=p.ablation)


@pytest.mark.parametrize("method", ["exact", "acdc"])
@pytest.mark.slow
def test_exact_patching_and_acdc_recover_the_planted_circuit(planted, method):
    p, s = planted
    true = graph_of(p.model.config).edge_set(p.true_edges)
    found = discover(method, p.model, s, p.metric)
    assert roc_auc(found.scores, true) == 1.0
    np.testing.assert_array_equal(found.circuit, true)


def test_faithfulness_of_a_perfect_ranking(planted):
    p, s = planted
    true = graph_of(p.model.config).edge_set(p.true_edges)
    curve = faithfulness_curve(p.model, *s, p.metric, true.astype(float))
    n, k = len(true), int(true.sum())
    assert curve.faithfulness[0] == 0.0 and curve.faithfulness[-1] == 1.0
    np.testing.assert_allclose(curve.faithfulness[k:], 1.0, atol=1e-5)  # the circuit and any superset: all of it
    # CMD is the area above the curve: at most the k/n of the axis before the circuit is complete.
    assert 0 < curve.cmd <= k / n + 1e-6
    np.testing.assert_allclose(curve.cpr + curve.cmd, 1.0, atol=1e-6)  # f stays within [0, 1] here
    reversed_curve = faithfulness_curve(p.model, *s, p.metric, (~true).astype(float))
    assert reversed_curve.cpr < curve.cpr


def test_roc_auc_and_node_scores():
    assert roc_auc([3, -2, 0.1, 0], [True, True, False, False]) == 1.0
    assert roc_auc([0, 0.1, -2, 3], [True, True, False, False]) == 0.0
    with pytest.raises(ValueError, match="both"):
        roc_auc([1, 2], [True, True])
    graph = graph_of(ModelConfig(d_vocab=3, n_ctx=2, n_layers=1, d_model=4, n_heads=1, d_mlp=0))
    # senders input, a0.h0; receivers a0.h0<q,k,v>, logits
    scores = edges_from_nodes(graph, np.array([5.0, -2.0]))
    assert dict(zip(graph.edge_names(), scores)) == {"input->a0.h0<q>": 2.0, "input->a0.h0<k>": 2.0,
                                                     "input->a0.h0<v>": 2.0, "input->logits": 5.0,
                                                     "a0.h0->logits": 2.0}


@pytest.mark.slow
def test_edge_pruning_learns_the_planted_circuit(planted):
    p, s = planted
    true = graph_of(p.model.config).edge_set(p.true_edges)
    found = discover("edge_pruning", p.model, s, p.metric)
    np.testing.assert_array_equal(found.circuit, true)
    assert found.scores[true].min() > 0.9 and found.scores[~true].max() < 0.1


@pytest.mark.slow
def test_eap_ig_is_complete(planted):
    """Integrated gradients sum to the effect of moving every edge at once (up to the Riemann sum's error)."""
    from toymi.circuits.attribution import eap_ig

    p, s = planted
    graph = graph_of(p.model.config)
    scores = eap_ig(p.model, *s, p.metric, steps=64)
    everything = float(_metric_with(p.model, *s, p.metric, jnp.asarray(graph.valid, jnp.float32)))
    nothing = float(_metric_with(p.model, *s, p.metric, jnp.zeros(graph.valid.shape)))
    assert abs(nothing - everything) > 0.5
    np.testing.assert_allclose(scores.sum(), everything - nothing, rtol=0.02)


@pytest.mark.slow
def test_acdc_bounds_the_metric_drift_and_drops_dead_nodes():
    from toymi.circuits.acdc import acdc
    from toymi.circuits.patching import logits_with_edges

    config = ModelConfig(d_vocab=7, n_ctx=5, n_layers=2, d_model=16, n_heads=2, normalization="layernorm")
    model = Transformer(config, jax.random.key(0))
    clean = jax.random.randint(jax.random.key(1), (2, 5), 0, 7)
    corrupted = jax.random.randint(jax.random.key(2), (2, 5), 0, 7)
    metric = LogitDiff(jnp.array([1, 2]), jnp.array([4, 5]))
    s = setup(model, clean, corrupted, direction="noising")
    graph = graph_of(config)
    full = float(metric(model(clean)))
    for threshold in (0.01, 0.1):
        kept = acdc(model, *s, metric, threshold)
        assert 0 < kept.sum() < graph.n_edges
        # each removal moved the metric away from the full model's by less than the threshold
        drift = abs(float(metric(logits_with_edges(model, s, kept))) - full)
        assert drift < threshold * (~kept).sum()
        # a kept edge into a node means the node still sends something somewhere
        kept_matrix = graph.edge_matrix(kept)
        for r, node in enumerate(graph.receiver_nodes()):
            if node >= 0 and kept_matrix[:, r].any():
                assert kept_matrix[node].any(), graph.receivers[r]
