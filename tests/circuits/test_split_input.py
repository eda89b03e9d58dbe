"""The input node split by position (`input[p]`): the same model, finer edges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.forward import ablation_values, batched_forward, graph_for, graph_of
from toymi.circuits.graph import build_graph
from toymi.circuits.patching import edge_patching, setup
from toymi.dissect.metrics import LogitDiff
from toymi.jit import jit
from toymi.model.transformer import ModelConfig, Transformer

CONFIG = ModelConfig(d_vocab=7, n_ctx=5, n_layers=2, d_model=16, n_heads=2, normalization="layernorm")
ONE_LAYER = ModelConfig(d_vocab=7, n_ctx=5, n_layers=1, d_model=16, n_heads=2, normalization="layernorm")
METRIC = LogitDiff(jnp.array([1, 2]), jnp.array([4, 5]))


def _tokens(seed):
    return jax.random.randint(jax.random.key(seed), (2, 5), 0, 7)


def test_split_graph_names_one_input_sender_per_position():
    graph = build_graph(CONFIG, input_positions=5)
    assert graph.senders[:5] == tuple(f"input[{p}]" for p in range(5)) and graph.input_split
    assert graph.n_input_senders == 5 and graph.head_sender(0, 0) == 5
    whole = build_graph(CONFIG)
    assert graph.n_edges == whole.n_edges + 4 * int(whole.valid[0].sum())
    positions = graph.input_position_of_edges()
    assert sorted(set(positions.tolist())) == [-1, 0, 1, 2, 3, 4]
    assert (whole.input_position_of_edges() == -1).all()
    with pytest.raises(ValueError, match="input_positions"):
        build_graph(CONFIG, input_positions=6)


@pytest.mark.slow
def test_every_position_ablated_together_is_the_whole_input_node_ablated():
    model = Transformer(CONFIG, jax.random.key(0))
    clean, corrupted = _tokens(1), _tokens(2)
    whole = ablation_values(model, corrupted, "patch")
    split = ablation_values(model, corrupted, "patch", split_input=True)
    np.testing.assert_allclose(split[:, :5].sum(1), whole[:, 0], atol=1e-6)  # the positions sum to the node
    g_whole, g_split = graph_for(model, whole), graph_for(model, split)
    assert not g_whole.input_split and g_split.input_split
    rng = np.random.default_rng(0)
    later = rng.random(g_whole.valid[1:].shape) < 0.3  # some other edges ablated too, the same in both graphs
    a_whole = np.concatenate([g_whole.valid[:1], later]).astype(np.float32)
    a_split = np.concatenate([np.repeat(g_whole.valid[:1], 5, 0), later]).astype(np.float32)
    forward = jit(batched_forward)
    np.testing.assert_allclose(forward(model, clean, split, jnp.asarray(a_split)),
                               forward(model, clean, whole, jnp.asarray(a_whole)), atol=2e-5)
    assert np.abs(forward(model, clean, split, jnp.zeros(g_split.valid.shape)) - model(clean)).max() < 2e-5


def test_a_sender_count_that_fits_no_graph_is_an_error():
    model = Transformer(CONFIG, jax.random.key(0))
    with pytest.raises(ValueError, match="senders"):
        graph_for(model, jnp.zeros((2, 3, 5, 16)))


def test_one_layer_position_edges_that_cannot_reach_the_last_position_are_zero():
    """In one layer, a query, MLP or logits input at position p < last touches only position p's outputs."""
    model = Transformer(ONE_LAYER, jax.random.key(3))
    last = LogitDiff(jnp.array([1, 2]), jnp.array([4, 5]))  # reads the last position
    effects = edge_patching(model, _tokens(1), _tokens(2), last, direction="noising", split_input=True)
    graph = effects.graph
    names = np.array(graph.edge_names())
    position = graph.input_position_of_edges()
    local = np.array([not n.endswith(("<k>", "<v>")) for n in names]) & (position >= 0) & (position < 4)
    assert local.sum() == 4 * (2 + 1 + 1)  # q of both heads, m0, logits at positions 0..3
    np.testing.assert_allclose(effects.effect[local], 0.0, atol=1e-6)
    reads = (position >= 0) & (position < 4) & ~local  # keys and values read every earlier position
    assert np.abs(np.asarray(effects.effect)[reads]).max() > 1e-3


@pytest.mark.slow
def test_split_exact_patching_equals_the_reference_forward_pass():
    model = Transformer(CONFIG, jax.random.key(0))
    kw = dict(direction="noising", split_input=True)
    fast = edge_patching(model, _tokens(1), _tokens(2), METRIC, **kw)
    reference = edge_patching(model, _tokens(1), _tokens(2), METRIC, reuse_clean=False, **kw)
    np.testing.assert_allclose(fast.patched, reference.patched, atol=2e-5)
    assert fast.graph is graph_of(CONFIG, 5)
    s = setup(model, _tokens(1), _tokens(2), direction="noising", split_input=True)
    assert s.other.shape == (2, len(fast.graph.senders), 5, 16)
