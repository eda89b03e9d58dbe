"""Head scores and weight circuits against known answers: a hand-built induction circuit, random models, and
matrices whose eigenvalues and norms are known."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.dissect.attention import (
    duplicate_token_targets, head_scores, induction_score, pattern_score, previous_token_score,
    repeated_random_tokens,
)
from toymi.dissect.circuits import (
    composition_scores, eigenvalue_score, factored_norm, ov_circuit, ov_copying_scores, positional_qk_circuit,
    qk_circuit,
)

VOCAB, HALF = 8, 8  # random first copies use every token once
BOS = VOCAB  # an extra input token with a zero embedding: position 0 then has no previous token to offer
N_CTX = 2 * HALF + 1
SHARP = 30.0  # attention logit of a matching key; others get 0, so the softmax is nearly one-hot


def filled_transformer(config, fill):
    """A `Transformer` whose every weight is `fill(shape)`, without running the (slow, eager) random init."""
    shapes = eqx.filter_eval_shape(toymi.Transformer, config, jax.random.PRNGKey(0))
    return jax.tree.map(lambda leaf: jnp.asarray(fill(leaf.shape), jnp.float32)
                        if isinstance(leaf, jax.ShapeDtypeStruct) else leaf, shapes)


def random_transformer(config, seed):
    """Every weight, bias and norm weight drawn from N(0, 1/fan_in): a random model with nothing left at zero."""
    rng = np.random.default_rng(seed)
    return filled_transformer(config, lambda shape: rng.normal(size=shape) / np.sqrt(shape[-2] if len(shape) > 1
                                                                                        else config.d_model))


def hand_built_induction_model():
    """A 2-layer attention-only transformer that implements induction by K-composition, with one-hot subspaces.

    Residual layout (d_model = 3 VOCAB + N_CTX): [token one-hot | position one-hot | previous token | output];
    BOS embeds to zero.
    Layer 0 head 0 is a previous-token head: its query reads position i, its key position i - 1 (positional QK),
    and its OV copies the token into the previous-token subspace. Layer 1 head 0 is an induction head: its query
    reads the current token, its key the previous-token subspace (so it attends where the previous token equals the
    current one), and its OV writes the attended token to the output subspace, which W_U reads. Head 1 of each layer
    has zero weights (uniform attention, no output).
    """
    tok, pos, prev, out = (np.arange(VOCAB), VOCAB + np.arange(N_CTX), VOCAB + N_CTX + np.arange(VOCAB),
                           2 * VOCAB + N_CTX + np.arange(VOCAB))
    d_model, d_head = 3 * VOCAB + N_CTX, N_CTX
    config = toymi.ModelConfig(d_vocab=VOCAB + 1, d_vocab_out=VOCAB, n_ctx=N_CTX, n_layers=2, d_model=d_model,
                               n_heads=2, d_head=d_head, d_mlp=0)
    gain = SHARP * np.sqrt(d_head)  # undo the 1/sqrt(d_head) scaling of the scores
    W_E = np.zeros((VOCAB + 1, d_model)); W_E[np.arange(VOCAB), tok] = 1
    W_pos = np.zeros((N_CTX, d_model)); W_pos[np.arange(N_CTX), pos] = 1
    W_Q, W_K, W_V, W_O = (np.zeros((2, 2, d_model, d_head)), np.zeros((2, 2, d_model, d_head)),
                          np.zeros((2, 2, d_model, d_head)), np.zeros((2, 2, d_head, d_model)))
    # layer 0 head 0: query at position i matches the key at position i - 1
    W_Q[0, 0, pos, np.arange(N_CTX)] = gain
    W_K[0, 0, pos[:-1], np.arange(1, N_CTX)] = 1
    W_V[0, 0, tok, np.arange(VOCAB)] = 1
    W_O[0, 0, np.arange(VOCAB), prev] = 1
    # layer 1 head 0: query token t matches a key whose previous token is t
    W_Q[1, 0, tok, np.arange(VOCAB)] = gain
    W_K[1, 0, prev, np.arange(VOCAB)] = 1
    W_V[1, 0, tok, np.arange(VOCAB)] = 1
    W_O[1, 0, np.arange(VOCAB), out] = 1
    W_U = np.zeros((d_model, VOCAB)); W_U[out, np.arange(VOCAB)] = 1
    model = filled_transformer(config, np.zeros)
    return eqx.tree_at(
        lambda m: (m.W_E, m.W_pos, m.W_U, m.blocks.attn.W_Q, m.blocks.attn.W_K, m.blocks.attn.W_V, m.blocks.attn.W_O),
        model, tuple(jnp.asarray(w, jnp.float32) for w in (W_E, W_pos, W_U, W_Q, W_K, W_V, W_O)),
    )


@pytest.fixture(scope="module")
def induction_model():
    return hand_built_induction_model()


@pytest.fixture(scope="module")
def repeated():
    return repeated_random_tokens(jax.random.PRNGKey(0), 16, HALF, VOCAB, bos=BOS)


def test_repeated_random_tokens_repeat_distinct_tokens():
    tokens = repeated_random_tokens(jax.random.PRNGKey(3), 5, 6, 10, bos=10)
    assert tokens.shape == (5, 13)
    assert (tokens[:, 0] == 10).all()
    np.testing.assert_array_equal(tokens[:, 1:7], tokens[:, 7:])
    assert all(len(set(row.tolist())) == 6 for row in np.asarray(tokens[:, 1:7]))
    with pytest.raises(ValueError, match="half_len"):
        repeated_random_tokens(jax.random.PRNGKey(3), 5, 11, 10)


@pytest.mark.slow
def test_the_hand_built_model_predicts_the_second_copy(induction_model, repeated):
    logits = induction_model(repeated)
    predicted = logits[:, HALF + 1:-1].argmax(-1)  # the second copy predicts its next token
    np.testing.assert_array_equal(predicted, repeated[:, HALF + 2:])


@pytest.mark.slow
def test_hand_built_heads_score_as_built(induction_model, repeated):
    scores = head_scores(induction_model, repeated)
    assert scores["previous_token"][0, 0] > 0.99
    assert scores["induction"][1, 0] > 0.99
    # the others do not do what they were not built to do
    assert scores["induction"][0, 0] < 0.01
    assert scores["previous_token"][1, 0] < 0.2  # uniform over the first copy, where it finds no match
    assert scores["induction"][:, 1].max() < 0.2  # zero-weight heads attend uniformly
    assert scores["duplicate_token"].max() < 0.2  # nothing attends to the earlier copy of the same token


@pytest.mark.slow
def test_a_random_model_has_no_induction_head(repeated):
    config = toymi.ModelConfig(d_vocab=VOCAB + 1, n_ctx=N_CTX, n_layers=2, d_model=32, n_heads=4, d_mlp=0)
    scores = head_scores(random_transformer(config, 1), repeated)
    assert scores["induction"].max() < 0.25
    assert scores["previous_token"].max() < 0.5


def test_pattern_score_reads_the_target_entries():
    # pattern [layer=1, head=2, query=3, key=3]: head 0 attends to the previous key, head 1 to itself
    prev = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    pattern = jnp.asarray(np.stack([prev, np.eye(3)])[None])
    np.testing.assert_allclose(previous_token_score(pattern), [[1.0, 0.0]])
    np.testing.assert_allclose(pattern_score(pattern, jnp.array([0, 1, -1])), [[0.5, 1.0]])  # query 2 not counted
    tokens = jnp.array([5, 7, 5])
    np.testing.assert_array_equal(duplicate_token_targets(tokens), [-1, -1, 0])
    np.testing.assert_allclose(induction_score(pattern, tokens), [[1.0, 0.0]])  # query 2's target is key 1


def test_pattern_score_rejects_a_non_pattern():
    with pytest.raises(ValueError, match="query_pos, key_pos"):
        previous_token_score(jnp.ones((2, 3, 4)))


def test_k_composition_of_the_hand_built_pair_beats_random_pairs(induction_model):
    hand = {kind: composition_scores(induction_model, kind)[0, 0, 1, 0] for kind in "QKV"}
    # the previous-token head writes where the induction head's keys read, and nowhere its queries or values read
    np.testing.assert_allclose(hand["K"], 1 / np.sqrt(VOCAB), rtol=1e-5)  # a permutation into a c·identity
    assert hand["Q"] == 0 and hand["V"] == 0
    config = induction_model.config
    random = random_transformer(config, 2)
    for kind in "QKV":
        scores = composition_scores(random, kind)
        assert np.isnan(scores[1, :, 0, :]).all() and np.isnan(scores[0, :, 0, :]).all()  # no backward or same-layer
        assert scores[0, :, 1, :].max() < hand["K"]


def test_composition_score_matches_the_dense_formula():
    config = toymi.ModelConfig(d_vocab=5, n_ctx=4, n_layers=3, d_model=12, n_heads=2, d_head=3, d_mlp=0)
    m = random_transformer(config, 4)
    ov = jnp.einsum("lhde,lhef->lhdf", m.W_V, m.W_O)
    qk = jnp.einsum("lhde,lhfe->lhdf", m.W_Q, m.W_K)
    norm = lambda x: jnp.linalg.norm(x, axis=(-2, -1))  # noqa: E731
    for kind, right in (("Q", qk), ("K", jnp.swapaxes(qk, -1, -2)), ("V", ov)):
        expected = norm(ov[0, 1] @ right[2, 0]) / (norm(ov[0, 1]) * norm(right[2, 0]))
        np.testing.assert_allclose(composition_scores(m, kind)[0, 1, 2, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(factored_norm(m.W_V, m.W_O), norm(ov), rtol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        composition_scores(m, "O")


def test_eigenvalue_score_known_matrices():
    rotation = jnp.array([[0.0, -1.0], [1.0, 0.0]])  # eigenvalues ±i: trace 0
    batch = jnp.stack([jnp.eye(2), -jnp.eye(2), rotation, jnp.diag(jnp.array([3.0, -1.0]))])
    np.testing.assert_allclose(eigenvalue_score(batch), [1.0, -1.0, 0.0, 0.5], atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        eigenvalue_score(jnp.ones((2, 3)))


@pytest.mark.slow
def test_ov_copying_score_of_an_identity_ov_is_one(induction_model):
    # layer 1 head 0 copies the attended token to the same token's logit: its full OV circuit is the identity
    ov = ov_circuit(induction_model)[1, 0]  # [VOCAB + 1, VOCAB]: BOS is input only
    np.testing.assert_allclose(ov, np.eye(VOCAB + 1, VOCAB), atol=1e-6)
    copying = ov_copying_scores(induction_model, tokens=jnp.arange(VOCAB))
    np.testing.assert_allclose(copying[1, 0], 1.0, atol=1e-5)
    # a dense random OV circuit: score near 0
    config = toymi.ModelConfig(d_vocab=40, n_ctx=4, n_layers=1, d_model=32, n_heads=4, d_mlp=0)
    random_model = random_transformer(config, 5)
    random = ov_copying_scores(random_model)
    assert np.abs(random).max() < 0.5
    # the small cyclic matrix gives the eigenvalues of the full circuit
    full = ov_circuit(random_model)
    np.testing.assert_allclose(random, eigenvalue_score(full), atol=1e-3)


def test_copying_score_needs_matching_input_and_output_tokens():
    config = toymi.ModelConfig(d_vocab=9, n_ctx=4, n_layers=1, d_model=16, n_heads=2, d_mlp=0, d_vocab_out=8)
    model = random_transformer(config, 0)
    with pytest.raises(ValueError, match="tokens=jnp.arange"):
        ov_copying_scores(model)
    assert ov_copying_scores(model, tokens=jnp.arange(8)).shape == (1, 2)
    with pytest.raises(ValueError, match="d_vocab=9"):
        ov_circuit(model, tokens=jnp.array([9]))


def test_qk_circuits_of_the_hand_built_heads(induction_model):
    # the induction head's query token t attends (directly from the embedding) to nothing: it reads the
    # previous-token subspace, which only layer 0 writes; the positional circuit of the previous-token head is a
    # sub-diagonal
    assert float(jnp.abs(qk_circuit(induction_model)[1, 0]).max()) == 0.0
    positional = positional_qk_circuit(induction_model)[0, 0]
    gain = SHARP * np.sqrt(N_CTX)
    np.testing.assert_allclose(positional, gain * np.eye(N_CTX, k=-1), atol=1e-4)
