"""QK attribution: a head's score split over pairs of input positions sums to the score (with earlier layers,
normalisers and MLPs frozen), and on the hand-written induction circuit the induction head's score comes from the
query's own token meeting the key's previous token."""

import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.frozen_transformer import neuron_transcoders
from toymi.circuits.qk_attribution import qk_attribution
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
