"""The addition model's per-digit truth: which positions each answer digit certainly reads, the scoring of a method's
position scores against it, and the study's plumbing on a small model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.digit_positions import PARTS, digit_groups, digit_position_study, digit_result
from toymi.circuits.planted import TargetLogit
from toymi.tasks.addition import Addition


def test_each_digits_groups_are_its_positions_in_the_question():
    """`a4 a3 a2 a1 a0 + b4 b3 b2 b1 b0 = s5 s4 s3 s2 s1 s0`: a_i at 4 - i, b_i at 10 - i; digit i is predicted at
    16 - i, after the answer digits s5 .. s_{i+1} (positions 12 .. 16 - i)."""
    g = digit_groups(5, 1)
    assert g["own"].tolist() == [3, 9] and sorted(g["below"].tolist()) == [4, 10]
    assert sorted(g["above"].tolist()) == [0, 1, 2, 6, 7, 8] and g["answer"].tolist() == [12, 13, 14, 15]
    assert digit_groups(5, 4)["above"].size == 0 and digit_groups(5, 0)["below"].size == 0
    task = Addition(n_digits=5, eval_size=4)
    tokens = np.asarray(task.test.tokens[0])
    a, b = task.facts()["question_digits"](task.test.tokens[:1])
    for i in range(5):
        own = digit_groups(5, i)["own"]
        assert tokens[own].tolist() == [int(a[0, i]), int(b[0, i])]
        assert task.facts()["predicted_at"][i] == digit_groups(5, i)["answer"][-1]  # predicted where s_{i+1} sits
    with pytest.raises(ValueError, match="answer digit 5 has no certain positions"):
        digit_groups(5, 5)


def test_the_scores_of_hand_made_position_scores():
    """Digit 1 of 5: own pair scored 3 and 2, one position below 1, one above 2 (tied with the own pair's second),
    an answer digit 2; the circuit keeps the own pair and that position above."""
    g = digit_groups(5, 1)
    positions = np.zeros(16)
    positions[[3, 9]] = [3.0, 2.0]
    positions[4], positions[0], positions[13] = 1.0, 2.0, 2.0
    kept = positions >= 2.0
    r = digit_result(1, "made", positions, kept, g)
    assert r.shares == pytest.approx({"own": 0.5, "below": 0.1, "above": 0.2, "answer": 0.2})
    assert r.auc_vs_above == pytest.approx(11.5 / 12)  # own (3, 2) against above (2, 0, 0, 0, 0, 0): a tie counts half
    assert r.auc_below_vs_above == pytest.approx(7.5 / 12)  # below (1, 0) against the same
    assert r.top_two  # the tie goes to the own position, which comes first in the question's order
    assert r.reads_own and r.above_kept == 1
    positions[0] = 4.0
    r = digit_result(1, "made", positions, kept, g)
    assert not r.top_two and r.auc_vs_above == pytest.approx(10 / 12)
    top_digit = digit_result(4, "made", np.zeros(13), np.zeros(13, bool), digit_groups(5, 4))
    assert np.isnan(top_digit.auc_vs_above) and np.isnan(top_digit.auc_below_vs_above)  # nothing above digit 4
    g0 = digit_groups(5, 0)  # nothing below digit 0
    size = int(g0["answer"].max()) + 1
    assert np.isnan(digit_result(0, "made", np.ones(size), np.zeros(size, bool), g0).auc_below_vs_above)
    assert set(PARTS) == set(r.shares)


def test_an_unscored_target_outside_the_outputs_does_not_poison_the_metric():
    """Addition's `+` (10) and `=` (11) are targets at positions no output is scored at: the metric must ignore
    them (a gather outside the 10 outputs gives NaN, and NaN times a zero weight is NaN)."""
    logits = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 10))
    targets = jnp.array([[10, 4, 11], [11, 7, 10]])
    mask = jnp.zeros((2, 3)).at[:, 1].set(1.0)
    value = float(TargetLogit(targets, mask)(logits))
    expected = float(np.mean([logits[0, 1, 4] - logits[0, 1].mean(), logits[1, 1, 7] - logits[1, 1].mean()]))
    assert value == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_the_study_on_a_small_model_scores_only_what_patching_can_change():
    """A random 1-layer model on 2-digit addition, exact patching: `+`, `=` and positions after the one that predicts
    the digit have no score (nothing there differs between questions, or nothing there reaches it), and the shares
    add up to 1."""
    from toymi.model.transformer import ModelConfig, Transformer

    task = Addition(n_digits=2, eval_size=16)
    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=16, d_vocab=12,
                                    d_vocab_out=10, n_ctx=9, act_fn="relu"), jax.random.PRNGKey(0))
    results = digit_position_study(model, task, ["exact"], n_inputs=8)
    assert [r.digit for r in results] == [0, 1]
    for r in results:
        at = task.facts()["predicted_at"][r.digit]
        assert len(r.positions) == at + 1
        assert np.abs(r.positions[[2, 5]]).max() < 1e-6  # `+` and `=` (float noise of the recomputed receiver)
        assert sum(r.shares.values()) == pytest.approx(1.0)
    with pytest.raises(Exception, match="raise task.eval_size"):
        digit_position_study(model, task, ["exact"], n_inputs=9)
    cascade = digit_position_study(model, task, ["exact"], n_inputs=8, digits=[1], eval_set="cascade")
    assert not np.allclose(cascade[0].positions, results[1].positions)  # other questions, so other scores
    with pytest.raises(Exception, match=r"eval_set must be one of \['cascade', 'test'\], got 'train'"):
        digit_position_study(model, task, ["exact"], n_inputs=8, eval_set="train")
    from toymi.tasks.induction import Induction

    with pytest.raises(Exception, match="the per-digit truth is addition's; got a Induction task"):
        digit_position_study(model, Induction(vocab=16, subseq_len=4, eval_size=4), ["exact"])


@pytest.mark.slow  # ~6 s: one compile per question count
def test_graph_scores_average_each_questions_right_digit_attribution():
    """`digit_graph_scores`' position scores are, per digit, the mean over questions of each position's |total
    attribution| to that question's right digit at the position predicting it (checked one question at a time);
    with the zeros question as baseline, `+`, `=` and every 0 digit have no attribution."""
    from toymi.circuits.digit_graphs import digit_graph_scores
    from toymi.circuits.frozen_transformer import neuron_transcoders
    from toymi.circuits.transformer_graph_summary import summarise_transformer_graphs
    from toymi.model.transformer import ModelConfig, Transformer

    task = Addition(n_digits=2, eval_size=8)
    model = Transformer(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=16, d_vocab=12,
                                    d_vocab_out=10, n_ctx=9, act_fn="relu", normalization="layernorm"),
                        jax.random.PRNGKey(1))
    tokens, layers = task.test.tokens[:5], neuron_transcoders(model)
    scores = digit_graph_scores(model, task, layers, tokens, chunk=4)
    assert scores["completeness_gap"] < 1e-4 and scores["error_share"] == 0.0
    for d in scores["digits"]:
        at = int(task.facts()["predicted_at"][d["digit"]])
        one = []
        for q in np.asarray(tokens):
            where = np.zeros((1, 10), bool)
            where[0, q[at + 1]] = True
            s = summarise_transformer_graphs(model, layers, jnp.asarray(q)[None], jnp.asarray(where), (at,), chunk=1)
            one.append(np.abs(np.asarray(s.signed)[q[at + 1], : at + 1]))
        np.testing.assert_allclose(d["positions"], np.mean(one, 0), rtol=1e-4, atol=1e-6)
        assert sum(d["shares"].values()) == pytest.approx(1.0)
    zeros = digit_graph_scores(model, task, layers, tokens, baseline="zeros question", chunk=4)
    for d in zeros["digits"]:
        assert d["positions"][2] == 0.0 and d["positions"][5] == 0.0  # `+` and `=`
    with pytest.raises(ValueError, match="baseline must be one of"):
        digit_graph_scores(model, task, layers, tokens, baseline="ones")
    with pytest.raises(ValueError, match=r"tokens must be whole questions and answers \[batch, 9\]"):
        digit_graph_scores(model, task, layers, tokens[:, :6])
