"""Exact edge patching against path patches built by hand with the model's own sites and interventions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.forward import ablation_values, batched_forward, graph_of, node_outputs
from toymi.circuits.patching import edge_patching
from toymi.circuits.planted import copy_first
from toymi.dissect.metrics import LogitDiff
from toymi.jit import jit
from toymi.model.transformer import ModelConfig
from toymi.model.interventions import patch, steer
from toymi.model.transformer import Transformer

CONFIGS = {
    "layernorm": ModelConfig(d_vocab=7, n_ctx=5, n_layers=2, d_model=16, n_heads=2, normalization="layernorm"),
    "attn_only_rms_nopos": ModelConfig(d_vocab=7, n_ctx=5, n_layers=2, d_model=8, n_heads=2, d_mlp=0,
                                       normalization="rmsnorm", positional_embedding="none"),
}


def _model(name):
    return Transformer(CONFIGS[name], jax.random.key(0))


def _tokens(seed):
    return jax.random.randint(jax.random.key(seed), (2, 5), 0, 7)


METRIC = LogitDiff(jnp.array([1, 2]), jnp.array([4, 5]))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_unmasked_graph_forward_is_the_model(name):
    model, tokens = _model(name), _tokens(1)
    graph = graph_of(model.config)
    logits = jit(batched_forward)(model, tokens, node_outputs(model, tokens), jnp.zeros(graph.valid.shape))
    np.testing.assert_allclose(logits, model(tokens), atol=2e-5)


def _sender_values(model, tokens):
    """Every sender's output on one sequence, from the model's own captured sites: [sender, pos, d_model]."""
    sites = ["embed", "result"] + (["pos_embed"] if model.W_pos is not None else []) + (
        [] if model.config.attn_only else ["mlp_out"])
    _, acts = model.run(tokens, capture=sites)
    first = acts["embed"] + (acts["pos_embed"] if model.W_pos is not None else 0.0)
    values = [first]
    for layer in range(model.config.n_layers):
        values.extend(jnp.moveaxis(acts["result", layer], 1, 0))
        if not model.config.attn_only:
            values.append(acts["mlp_out", layer])
    return jnp.stack(values)


def _normed(norm, x):
    return x if norm is None else norm(x)[0]


def _streams(model, tokens):
    """The residual stream entering each sub-layer on one sequence (what a receiver reads), from the model's sites."""
    return model.run(tokens, capture=["resid_pre"] + ([] if model.config.attn_only else ["resid_mid"]))[1]


def _hand_path_patch(model, tokens, acts, delta, receiver):
    """Logits of one sequence with `delta` added to the input of `receiver` alone (a name), by hand; `acts` are
    `_streams(model, tokens)`."""
    c = model.config
    if receiver == "logits":
        return model.run(tokens, interventions=[steer("resid_post", delta, layer=c.n_layers - 1)])[0]
    if receiver.startswith("m"):
        layer = int(receiver[1:])
        block = jax.tree.map(lambda w: w[layer], model.blocks)
        pre = _normed(block.ln2, acts["resid_mid", layer] + delta) @ block.mlp.W_in + block.mlp.b_in
        return model.run(tokens, interventions=[patch("mlp_pre", pre, layer=layer)])[0]
    layer, head, kind = int(receiver[1]), int(receiver.split(".h")[1][0]), receiver[-2]
    block = jax.tree.map(lambda w: w[layer], model.blocks)
    x = _normed(block.ln1, acts["resid_pre", layer] + delta)
    W, b = {"q": (block.attn.W_Q, block.attn.b_Q), "k": (block.attn.W_K, block.attn.b_K),
            "v": (block.attn.W_V, block.attn.b_V)}[kind]
    value = jnp.einsum("pd,hde->phe", x, W) + b  # every head from the patched input; only `head` is patched
    return model.run(tokens, interventions=[patch(kind, value, layer=layer, heads=head)])[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("ablation", ["patch", "zero", "mean"])
def test_each_edge_equals_a_hand_built_path_patch(name, ablation):
    model, clean, corrupted = _model(name), _tokens(1), _tokens(2)
    graph = graph_of(model.config)
    effects = edge_patching(model, clean, corrupted, METRIC, direction="noising", ablation=ablation)
    other = ablation_values(model, corrupted, ablation)
    # Edges of every sender kind into every receiver kind (a spread, to keep the test fast).
    chosen = sorted({int(i) for i in np.linspace(0, graph.n_edges - 1, 14)} | {graph.n_edges - 1})
    # Each clean sequence's sender values and streams, captured once for every edge (eager runs are what cost).
    senders = [_sender_values(model, clean[b]) for b in range(clean.shape[0])]
    streams = [_streams(model, clean[b]) for b in range(clean.shape[0])]
    for e in chosen:
        s, r = graph.edges[e]
        logits = []
        for b in range(clean.shape[0]):
            delta = other[b, s] - senders[b][s]
            logits.append(_hand_path_patch(model, clean[b], streams[b], delta, graph.receivers[r]))
        expected = METRIC(jnp.stack(logits))
        np.testing.assert_allclose(effects.patched[e], expected, atol=2e-5, err_msg=graph.edge_names()[e])
    np.testing.assert_allclose(effects.baseline, METRIC(model(clean)), atol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.slow
def test_reusing_the_clean_prefix_changes_nothing(name):
    model, clean, corrupted = _model(name), _tokens(1), _tokens(2)
    fast = edge_patching(model, clean, corrupted, METRIC, direction="noising")
    reference = edge_patching(model, clean, corrupted, METRIC, direction="noising", reuse_clean=False)
    np.testing.assert_allclose(fast.patched, reference.patched, atol=2e-5)
    assert np.abs(np.asarray(fast.effect)).max() > 1e-3


@pytest.mark.slow
def test_denoising_runs_the_corrupted_input_and_patches_clean_values():
    model, clean, corrupted = _model("layernorm"), _tokens(1), _tokens(2)
    noising = edge_patching(model, corrupted, clean, METRIC, direction="noising")
    denoising = edge_patching(model, clean, corrupted, METRIC, direction="denoising")
    np.testing.assert_allclose(denoising.patched, noising.patched, atol=1e-6)
    np.testing.assert_allclose(denoising.baseline, METRIC(model(corrupted)), atol=2e-5)


def test_bad_arguments_are_clear_errors():
    p = copy_first()  # built without initialising (fast)
    model, clean, corrupted = p.model, p.clean, p.corrupted
    with pytest.raises(ValueError, match="direction"):
        edge_patching(model, clean, corrupted, METRIC, direction="forward")
    with pytest.raises(ValueError, match="ablation"):
        edge_patching(model, clean, corrupted, METRIC, direction="noising", ablation="gaussian")
    with pytest.raises(ValueError, match="key"):
        edge_patching(model, clean, corrupted, METRIC, direction="noising", ablation="resample")
    with pytest.raises(KeyError, match="no edge"):
        graph_of(model.config).edge_index("a0.h1->a0.h0<q>")
    with pytest.raises(ValueError, match="a0.h1->a0.h0<q> is not an edge"):
        edge_patching(model, clean, corrupted, METRIC, direction="noising", edges=[[2, 0]])
    with pytest.raises(ValueError, match=r"\(0, 99\) is not an edge"):
        edge_patching(model, clean, corrupted, METRIC, direction="noising", edges=[[0, 99]])
    with pytest.raises(ValueError, match="one shape"):
        edge_patching(model, clean, corrupted[:, :2], METRIC, direction="noising")


def test_graph_edges_run_downstream_only():
    graph = graph_of(CONFIGS["layernorm"])
    names = set(graph.edge_names())
    assert "a0.h0->m0" in names and "a0.h0->a1.h1<k>" in names and "m0->a1.h0<v>" in names
    assert "a0.h0->a0.h1<q>" not in names and "m0->m0" not in names and "m1->a1.h0<q>" not in names
    # Counted by hand: input -> 15 receivers, each layer-0 head -> 9, m0 -> 8, each layer-1 head -> 2, m1 -> 1.
    assert graph.n_edges == 15 + 2 * 9 + 8 + 2 * 2 + 1


@pytest.mark.slow
def test_ablation_values():
    p = copy_first()
    values = node_outputs(p.model, p.corrupted)
    np.testing.assert_array_equal(ablation_values(p.model, p.corrupted, "zero"), 0.0)
    np.testing.assert_allclose(ablation_values(p.model, p.corrupted, "mean")[3], values.mean(0), atol=1e-6)
    drawn = ablation_values(p.model, p.corrupted, "resample", jax.random.key(0))
    # every example's values are some example's values, and not all from the example itself
    matches = [[bool(jnp.allclose(drawn[i], values[j])) for j in range(len(values))] for i in range(len(values))]
    assert all(any(row) for row in matches)
    assert not all(row[i] for i, row in enumerate(matches))


@pytest.mark.slow
def test_each_position_edge_equals_a_hand_built_path_patch_of_that_position():
    """`input[p] -> r`: the input's change at position p alone, added to r's input by hand."""
    model, clean, corrupted = _model("layernorm"), _tokens(1), _tokens(2)
    effects = edge_patching(model, clean, corrupted, METRIC, direction="noising", split_input=True)
    graph = effects.graph
    position = graph.input_position_of_edges()
    chosen = np.flatnonzero(position >= 0)[:: 7]  # a spread over positions and receivers
    change = [_sender_values(model, corrupted[b])[0] - _sender_values(model, clean[b])[0] for b in range(2)]
    streams = [_streams(model, clean[b]) for b in range(2)]
    for e in chosen:
        at = jnp.zeros((5, 1)).at[position[e]].set(1.0)
        receiver = graph.receivers[graph.edges[e, 1]]
        logits = [_hand_path_patch(model, clean[b], streams[b], change[b] * at, receiver) for b in range(2)]
        np.testing.assert_allclose(effects.patched[e], METRIC(jnp.stack(logits)), atol=2e-5,
                                   err_msg=graph.edge_names()[e])
    assert len(chosen) >= 8
