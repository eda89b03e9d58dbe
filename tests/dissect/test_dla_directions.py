"""Per-example and per-position DLA directions cannot be confused (issue 13: with batch == pos, `[batch]` answers
were read as one direction per position and gave wrong attributions without an error)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.dissect.logit_lens import (direct_logit_attribution, logit_diff_directions, logit_lens, logit_offset,
                                      neuron_direct_logit_attribution, per_example)
from toymi.dissect.residual import ACCUMULATED_SITES, decompose_resid, decomposition_sites


@pytest.fixture(scope="module")
def setup():
    config = toymi.ModelConfig(d_vocab=7, n_ctx=3, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                               normalization="layernorm")
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    tokens = jnp.array([[1, 2, 3], [4, 5, 6], [0, 1, 2]])  # 3 sequences of 3 tokens: batch == pos
    logits, acts = model.run(tokens, capture={*decomposition_sites(config), *ACCUMULATED_SITES, "mlp_post"})
    return model, tokens, logits, acts


@pytest.mark.slow
def test_batch_directions_are_refused_as_ambiguous(setup):
    model, tokens, _, acts = setup
    stack, _ = decompose_resid(model, acts)
    directions = logit_diff_directions(model, jnp.array([3, 4, 5]), jnp.array([0, 1, 2]))  # [batch, d_model]
    assert directions.shape == (3, 16)
    for read in (lambda d: direct_logit_attribution(model, stack, acts, d), lambda d: logit_lens(model, acts, d),
                 lambda d: neuron_direct_logit_attribution(model, acts, d)):
        with pytest.raises(ValueError, match="ambiguous.*per_example"):
            read(directions)


@pytest.mark.slow
def test_per_example_dla_sums_to_the_true_logit_differences(setup):
    model, tokens, logits, acts = setup
    stack, _ = decompose_resid(model, acts)
    correct, wrong = jnp.array([3, 4, 5]), jnp.array([0, 1, 2])
    dla = direct_logit_attribution(model, stack, acts, per_example(logit_diff_directions(model, correct, wrong)))
    last = dla[:, :, -1].sum(1)  # [batch]: every component's attribution at the answer position
    offset = logit_offset(model)
    true = logits[jnp.arange(3), -1, correct] - logits[jnp.arange(3), -1, wrong]
    np.testing.assert_allclose(last + offset[correct] - offset[wrong], true, atol=1e-5)
    # the same numbers from one direction per example and position
    per_position = logit_diff_directions(model, jnp.repeat(correct[:, None], 3, 1), jnp.repeat(wrong[:, None], 3, 1))
    np.testing.assert_allclose(direct_logit_attribution(model, stack, acts, per_position), dla, atol=1e-6)


@pytest.mark.slow
def test_wrong_pos_length_is_refused(setup):
    model, _, _, acts = setup
    stack, _ = decompose_resid(model, acts)
    with pytest.raises(ValueError, match="ambiguous"):
        direct_logit_attribution(model, stack, acts, jnp.ones((3, 2, 16)))
