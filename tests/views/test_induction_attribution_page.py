"""The induction Attribution page: its bars are the graph's and the ablations' effects, its heat map the head's
exact QK pair terms, and it refuses positions that do not repeat."""

import base64

import numpy as np
import pytest

from toymi.circuits.planted import induction
from toymi.views.induction_attribution_page import induction_attribution_view


def array(v) -> np.ndarray:
    """A trace's values as the page holds them: a list, or Plotly's typed array ({dtype, bdata, shape})."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(n) for n in str(v.get("shape", len(a))).split(",")])
    return np.asarray(v, float)


@pytest.fixture(scope="module")
def planted():
    return induction()


@pytest.mark.slow
def test_the_planted_circuit_is_drawn_as_its_mechanism(planted):
    """<bos> a b c d a b c d at t = 7, 6, 5: the graph's bar is all on s, the ablations' bars on s − 1, s and t only,
    and the induction head's pair terms are all on (t, s − 1) and add up to its score."""
    from toymi.circuits.induction_graphs import induction_effects
    from toymi.tasks.induction import induction_targets

    tokens, positions = np.asarray(planted.clean[:3]), [7, 6, 5]
    view = induction_attribution_view(planted.model, tokens, positions)
    data, sources = view.data, np.asarray(induction_targets(tokens))
    graph, ablation = induction_effects(planted.model, tokens, chunk=3)  # the view's own compiled program
    assert view.figure_ids() == ["induction"] and len(data["figures"]) == 3
    for b, t in enumerate(positions):
        s = int(sources[b, t])
        owed, lost, heat = data["figures"][b]["data"][:3]
        owed, lost, z = array(owed["y"]), array(lost["y"]), array(heat["z"])
        np.testing.assert_allclose(owed, graph[b, t, : t + 1], atol=1e-3)
        np.testing.assert_allclose(lost, -ablation[b, t, : t + 1], atol=1e-3)
        assert np.argmax(owed) == s and np.flatnonzero(np.abs(lost) > 1e-3).tolist() == [s - 1, s, t]  # query side 0..t then the constant, key side 0..s then the constant
        assert z.shape == (t + 2, s + 2) and np.unravel_index(np.abs(z).argmax(), z.shape) == (t, s - 1)
        assert z.sum() == pytest.approx(30.0, rel=1e-3)  # the planted head's score to its wanted key: SHARP
        assert f"copied from s = {s}" in data["summaries"][b] and "100% of its |pair terms| on (t, s − 1)" in \
            data["summaries"][b]


def test_a_position_that_does_not_repeat_and_wrong_labels_are_one_line_errors(planted):
    tokens = np.asarray(planted.clean[:2])
    with pytest.raises(ValueError, match=r"\(example, position\) \[\(1, 2\)\] are not repeated positions"):
        induction_attribution_view(planted.model, tokens, [7, 2])  # position 2: its token has not occurred yet
    with pytest.raises(ValueError, match="one position each"):
        induction_attribution_view(planted.model, tokens, [7])
    with pytest.raises(ValueError, match="one label per token"):
        induction_attribution_view(planted.model, tokens, [7, 7], labels=[["a"] * 9, ["b"] * 8])


@pytest.mark.slow
def test_a_runs_page_draws_the_head_its_circuits_report_names(induction_run, monkeypatch):
    """The head is chosen on the first `HEAD_SEQUENCES` eval sequences, as `toymi circuits`' report chooses it, not on
    the few sequences drawn (on close heads the two could pick differently)."""
    import toymi.circuits.qk_attribution as qk
    from toymi.circuits.replacement import own_neurons
    from toymi.run import load_run
    from toymi.views.induction_attribution_page import induction_page_for_run

    chosen_on = []

    def recording(model, tokens):
        chosen_on.append(len(tokens))
        return 1, 1, 0.5  # a head the drawn sequences would not pick on their own

    monkeypatch.setattr(qk, "induction_head", recording)
    run = load_run(induction_run)
    view = induction_page_for_run(run, own_neurons(run.model), n_examples=2)
    n_eval = len(next(iter(run.task.eval_batches().values())).tokens)
    assert chosen_on == [min(qk.HEAD_SEQUENCES, n_eval)] and "L1H1" in view.html()


@pytest.mark.slow
def test_after_an_mlp_the_page_also_splits_the_score_over_graph_nodes():
    """A random 2-layer model whose head in layer 1 is drawn: a second heat map over graph nodes (inputs, layer 0's
    latents per position; its exact neurons' error nodes left out) whose terms add up to the head's score, with the
    summary's shares on the boxed pairs."""
    from toymi.circuits.frozen_transformer import neuron_transcoders
    from toymi.circuits.qk_attribution import qk_attribution
    from transformer_models import model

    m, tokens, t, s = model(2, "layernorm", seed=3), np.array([[1, 4, 2, 1, 4, 2]]), 4, 2  # 4 at t copies s
    view = induction_attribution_view(m, tokens, [t], neuron_transcoders(m), head=(1, 1))
    traces = view.data["figures"][0]["data"]
    assert len(traces) == 4 and traces[3]["type"] == "heatmap"
    z, rows, cols = array(traces[3]["z"]), traces[3]["y"], traces[3]["x"]
    assert rows[:t + 1] == [f"{p}·{v}" for p, v in enumerate(tokens[0][:t + 1])] and rows[-1] == "const"
    assert rows[t + 1] == "L0 latents @ 0" and not any("error" in r for r in rows)  # exact: no error node drawn
    assert len(rows) == 2 * (t + 1) + 1 and len(cols) == 2 * (s + 1) + 1  # the key side up to s
    score = float(qk_attribution(m, tokens[0], 1, 1, t, s, neuron_transcoders(m)).score)
    assert z.sum() == pytest.approx(score, rel=1e-3, abs=1e-4)
    assert "inside the graph" in view.data["summaries"][0] and "on (latents at t, latents at s)" in \
        view.data["summaries"][0]
    assert "Below: the same score over pairs of the attribution graph's nodes" in view.html()
