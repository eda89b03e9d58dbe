"""QK attribution: a head's score split over pairs of input positions sums to the score (with earlier layers,
normalisers and MLPs frozen), and on the hand-written induction circuit the induction head's score comes from the
query's own token meeting the key's previous token."""

import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.frozen_transformer import neuron_transcoders
from toymi.circuits.qk_attribution import _pairs, qk_attribution, source_names
from transformer_models import TOKENS, model


@pytest.mark.parametrize("n_layers,normalization,d_mlp", [(1, "none", 12), (2, "layernorm", 12), (2, "rmsnorm", 0)])
def test_the_pairs_sum_to_the_heads_score(n_layers, normalization, d_mlp):
    m = model(n_layers, normalization, d_mlp=d_mlp)
    r = qk_attribution(m, TOKENS, n_layers - 1, 1, query=5, key=2, transcoders=neuron_transcoders(m))
    assert r.pairs.shape == (7, 7)
    own = m.run(TOKENS, capture=["attn_scores"])[1]["attn_scores", n_layers - 1][1, 5, 2]  # the model's own score
    assert float(jnp.abs(r.score - own)) < 1e-5
    assert float(jnp.abs(r.pairs.sum() - r.score)) < 1e-4, (float(r.pairs.sum()), float(r.score))
    if n_layers == 1:  # layer 0 reads the embeddings: each side's sources are its own position and the constant
        nonzero = np.argwhere(np.abs(np.asarray(r.pairs)) > 1e-7)
        assert set(map(tuple, nonzero)) <= {(5, 2), (5, 6), (6, 2), (6, 6)}


def test_the_induction_heads_score_comes_from_the_current_token_and_the_keys_previous_token():
    from toymi.circuits.planted import induction

    planted = induction(batch=4)
    tokens = planted.clean[0]  # <bos> a b c d a b c d
    t, s = 6, 3  # at the second b (position 6) the induction head attends to c (position 3), after the first b
    r = qk_attribution(planted.model, tokens, 1, 0, query=t, key=s)
    pairs = np.abs(np.asarray(r.pairs))
    assert np.unravel_index(pairs.argmax(), pairs.shape) == (t, s - 1)  # b at t meets b at s - 1
    assert pairs[t, s - 1] / pairs.sum() > 0.9
    assert float(jnp.abs(r.pairs.sum() - r.score)) < 1e-3


def test_qk_attribution_refuses_what_cannot_be():
    m = model(2, "none", d_mlp=0)
    with pytest.raises(IndexError, match="head 2"):
        qk_attribution(m, TOKENS, 1, 2, 5, 2)
    with pytest.raises(IndexError, match="layer 2"):
        qk_attribution(m, TOKENS, 2, 0, 5, 2)
    with pytest.raises(ValueError, match="after query"):
        qk_attribution(m, TOKENS, 1, 0, 2, 5)
    with pytest.raises(IndexError, match="one sequence"):
        qk_attribution(m, jnp.stack([TOKENS, TOKENS]), 1, 0, 5, 2)


@pytest.mark.parametrize("n_layers,normalization,act_fn", [(2, "layernorm", "relu"), (2, "none", "gelu"),
                                                          (1, "rmsnorm", "relu")])
def test_inside_the_graph_the_pairs_sum_to_the_score_and_a_latent_is_a_source_at_its_own_position(
        n_layers, normalization, act_fn):
    m = model(n_layers, normalization, act_fn=act_fn)
    layers = neuron_transcoders(m)
    query, key = 5, 2
    r = qk_attribution(m, TOKENS, n_layers - 1, 1, query, key, transcoders=layers, nodes="graph")
    n_pos, width, earlier = len(TOKENS), layers[0].n_latents, n_layers - 1  # the MLPs before the head
    assert r.pairs.shape == (len(r.sources),) * 2 == (n_pos + earlier * n_pos * (width + 1) + 1,) * 2
    if earlier:
        assert r.sources[n_pos] == "L0 latent 0 @ 0" and r.sources[-2] == f"L0 error @ {n_pos - 1}"
    assert float(jnp.abs(r.pairs.sum() - r.score)) < 1e-4, (float(r.pairs.sum()), float(r.score))
    pairs = np.asarray(r.pairs)
    if n_layers == 2:  # layer 0's latents reach layer 1's head only at their own position: no attention between
        latent = {name: i for i, name in enumerate(r.sources) if name.startswith("L0 latent")}
        for name, i in latent.items():
            p = int(name.split("@ ")[1])
            assert p == query or not np.abs(pairs[i]).any(), name
            assert p == key or not np.abs(pairs[:, i]).any(), name
        # A source that reaches the query's stream and not the key's (a layer-0 latent at the query; the input at 4,
        # after the key) moves the score linearly: its row is exactly what removing it from the frozen graph model
        # (latents frozen values, not following the inputs) takes from the score.
        row = np.abs(pairs[[latent[f"L0 latent {i} @ {query}"] for i in range(width)]].sum(1))
        i = int(row.argmax())
        assert row[i] > 1e-3
        for source, node in ((latent[f"L0 latent {i} @ {query}"], ("latent", (0, query, i))), (4, ("input", 4))):
            removed = _frozen_score_without(m, layers, *node, key=key, query=query)
            np.testing.assert_allclose(float(r.score) - removed, pairs[source].sum(), rtol=1e-3, atol=1e-5)
        # each layer's latents at a position as one source (what induction_qk reads): exactly their pairs' sums
        grouped, _ = _pairs(m, layers, TOKENS, jnp.zeros((n_pos, 16)), 1, 1, jnp.asarray([query]),
                            jnp.asarray([key]), "latents_by_position")
        names = source_names(n_pos, layers, 1, "latents_by_position")
        assert grouped.shape[1:] == (len(names),) * 2 and names[n_pos] == "L0 latents @ 0"
        blocks = np.zeros((len(names), len(r.sources)))  # source -> its group
        for j, name in enumerate(r.sources):
            group = f"{name.split(' latent ')[0]} latents @ {name.split('@ ')[1]}" if " latent " in name else name
            blocks[names.index(group), j] = 1.0
        np.testing.assert_allclose(np.asarray(grouped[0]), blocks @ pairs @ blocks.T, rtol=1e-4, atol=1e-5)
    else:  # in layer 0 the head reads the embeddings alone: the inputs and the constant are the only sources
        assert r.sources == (*(f"input {p}" for p in range(n_pos)), "constant")


def _frozen_score_without(m, layers, kind: str, where, key: int, query: int) -> float:
    """Layer 1's head 1 score from `query` to `key` in the frozen graph model with one node (`kind` "input" or
    "latent", at index `where`) removed."""
    from toymi.circuits.frozen_transformer import baseline_embedding, freeze, frozen_interventions, no_moves

    frozen = freeze(m, layers, TOKENS, baseline_embedding(m, None, len(TOKENS)), (len(TOKENS) - 1,))
    d_input, d_latent, d_error = no_moves(frozen)
    if kind == "input":
        d_input = d_input.at[where].set(-frozen.inputs[where])
    else:
        d_latent = d_latent.at[where].set(-frozen.latents[where])
    moves = frozen_interventions(m, layers, TOKENS, frozen, d_input, d_latent, d_error, follow=False)
    return float(m.forward(TOKENS, frozenset({"attn_scores"}), moves)[1]["attn_scores", 1][1, query, key])


def test_for_an_attention_only_model_the_graph_is_the_positions():
    m = model(2, "layernorm", d_mlp=0)
    by_position = qk_attribution(m, TOKENS, 1, 0, 5, 2)
    in_graph = qk_attribution(m, TOKENS, 1, 0, 5, 2, nodes="graph")
    assert in_graph.sources == by_position.sources == (*(f"input {p}" for p in range(6)), "constant")
    np.testing.assert_array_equal(np.asarray(in_graph.pairs), np.asarray(by_position.pairs))
    with pytest.raises(ValueError, match="nodes must be one of"):
        qk_attribution(m, TOKENS, 1, 0, 5, 2, nodes="latents")


def test_induction_qk_inside_the_graph_puts_a_share_on_the_latents_and_none_on_exact_error_nodes():
    from toymi.circuits.qk_attribution import induction_qk

    m = model(2, "layernorm")
    tokens = jnp.array([[1, 4, 2, 1, 4, 2], [3, 5, 7, 3, 5, 7]])
    by_position = induction_qk(m, tokens, 1, 1, neuron_transcoders(m))
    in_graph = induction_qk(m, tokens, 1, 1, neuron_transcoders(m), nodes="graph")
    assert in_graph["traced"] == by_position["traced"] > 0 and "latents" not in by_position
    assert 0.01 < in_graph["latents"] < 1 and in_graph["errors"] < 1e-6  # the own neurons are exact: errors are 0
    assert in_graph["t, s-1"] != by_position["t, s-1"]  # t and s - 1 are the input nodes alone
    attention_only = model(2, "layernorm", d_mlp=0)
    same = induction_qk(attention_only, tokens, 1, 1, nodes="graph")
    assert same == {**induction_qk(attention_only, tokens, 1, 1), "latents": 0.0, "latents t, s": 0.0, "errors": 0.0}
