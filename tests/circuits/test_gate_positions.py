"""Per-gate input positions of an AND-gate transformer: the hand-written solution, the per-gate margin, the certainly
zero edges of a split graph, and the scores' arithmetic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.circuits.forward import graph_of
from toymi.circuits.gate_positions import GateResult, gate_position_study, position_scores, summary
from toymi.circuits.graph import build_graph
from toymi.circuits.patching import edge_patching
from toymi.circuits.planted import and_gates_solution
from toymi.circuits.targets import GateMargin, certain_absences
from toymi.errors import ConfigError
from toymi.tasks.and_gates import AndGates, encode_tokens

TASK = AndGates(n_features=6, feature_probability=0.5, n_eval=64)  # every gate on in some of 32 inputs


def test_the_hand_written_solution_computes_every_gate_exactly():
    model = and_gates_solution(TASK)
    logits = TASK.gate_logits(model, TASK.eval_set.x)
    np.testing.assert_allclose(logits, 2 * TASK.eval_set.y - 1, atol=1e-5)


def test_a_gates_margin_alone_weighs_that_gate_only():
    on = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    logits = jnp.zeros((3, 2, 2)).at[:, -1].set(jnp.array([[3.0, 5.0], [-1.0, 7.0], [-2.0, -9.0]]))
    # gate 0: on once (+3, weight 1/2), off twice (+1, +2, weight 1/4 each); gate 1's logits weigh nothing
    assert float(GateMargin(on, gate=0)(logits)) == pytest.approx(0.5 * 3 + 0.25 * (1 + 2))
    assert float(GateMargin(on, gate=0).accuracy(logits)) == 1.0
    with pytest.raises(ConfigError, match="gate 2 does not exist"):
        GateMargin(on, gate=2)
    with pytest.raises(ConfigError, match="values of gate 0"):
        GateMargin(jnp.zeros((3, 2)).at[0, 1].set(1.0), gate=0)


def test_certain_absences_of_a_split_graph():
    config = toymi.ModelConfig(d_vocab=13, n_ctx=3, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=8,
                               d_vocab_out=15)
    names = certain_absences(build_graph(config, input_positions=3))
    readout = {n for n in names if n.startswith("input[2]")}
    assert len(readout) == 2 * 3 + 2  # every edge of the readout position: 2 heads x q, k, v, the MLP, the logits
    assert set(names) - readout == {f"input[{p}]->{r}" for p in (0, 1)
                                    for r in ("a0.h0<q>", "a0.h1<q>", "m0", "logits")}
    two = toymi.ModelConfig(d_vocab=13, n_ctx=3, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=8,
                            d_vocab_out=15)
    assert certain_absences(graph_of(two)) == ("input->a1.h0<q>", "input->a1.h1<q>", "input->m1", "input->logits")


@pytest.mark.slow
@pytest.mark.parametrize("n_layers", [1, 2])
def test_exact_patching_gives_every_certain_absence_of_a_split_graph_exactly_zero(n_layers):
    config = toymi.ModelConfig(d_vocab=13, n_ctx=7, n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=8,
                               d_vocab_out=TASK.n_gates)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    tokens = encode_tokens(TASK.eval_set.x[:16])
    effects = edge_patching(model, tokens[:8], tokens[8:], GateMargin(TASK.eval_set.y[:8]), direction="noising",
                            split_input=True)
    absent = effects.graph.edge_set(certain_absences(effects.graph))
    effect = np.abs(np.asarray(effects.effect))
    assert absent.sum() > 10 and effect[absent].max() < 1e-6
    assert np.median(effect[~absent]) > 1e-4


def test_position_scores_take_each_positions_largest_edge():
    config = toymi.ModelConfig(d_vocab=5, n_ctx=3, n_layers=1, d_model=8, n_heads=1, d_head=4, d_mlp=0)
    graph = build_graph(config, input_positions=3)  # input[0..2] -> a0.h0<q,k,v>, logits; a0.h0 -> logits
    scores = np.zeros(graph.n_edges)
    scores[graph.edge_index("input[0]->a0.h0<v>")] = -4.0
    scores[graph.edge_index("input[0]->a0.h0<k>")] = 1.0
    scores[graph.edge_index("input[2]->logits")] = 0.5
    scores[graph.edge_index("a0.h0->logits")] = 9.0  # not an input edge
    np.testing.assert_allclose(position_scores(graph, scores, 3), [4.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="split"):
        position_scores(build_graph(config), np.zeros(build_graph(config).n_edges), 3)


def test_summary_of_hand_made_results():
    def result(method, auc, top, in_circuit, kept, n):
        return GateResult((0, 1), method, np.zeros(4), auc, top, np.array(in_circuit), kept, n, 1.5)
    exact = result("exact", 1.0, True, [True, True, False, False], 0, 4)
    extra = result("exact", 0.5, False, [True, True, True, True], 2, 6)  # reads two other positions
    missing = result("eap", 0.75, True, [True, False, False, False], 0, 3)  # misses input 1
    assert exact.reads_exactly_inputs and not extra.reads_exactly_inputs and not missing.reads_exactly_inputs
    assert (exact.other_positions, extra.other_positions, missing.other_positions) == (0, 2, 0)
    rows = summary([exact, extra, missing])
    assert rows[0] == {"method": "exact", "gates": 2, "auc_mean": 0.75, "auc_min": 0.5, "top_two": 0.5,
                       "circuit_exact": 0.5, "other_positions": 1.0, "edges_mean": 5.0, "absent_kept_max": 2,
                       "seconds": 3.0}
    assert rows[1]["method"] == "eap" and rows[1]["gates"] == 1 and rows[1]["circuit_exact"] == 0.0


def test_methods_find_each_gates_two_positions_in_the_hand_written_solution():
    model = and_gates_solution(TASK)
    results = gate_position_study(model, TASK, ["exact", "eap"], n_inputs=32)
    assert len(results) == 2 * TASK.n_gates
    for r in results:
        assert r.auc == 1.0 and r.top_two and r.reads_exactly_inputs and r.absent_kept == 0, r
        outside = np.delete(r.positions, list(r.gate))
        assert outside.max() < 1e-6 < r.positions[list(r.gate)].min()
    with pytest.raises(ConfigError, match="raise task.n_eval"):
        gate_position_study(model, TASK, ["exact"], n_inputs=40)


def test_readme_per_position_example_runs(capsys):
    """The README's per-position block runs as written and prints what its comment says."""
    from readme_python import promised_output, run_python_block

    block, _ = run_python_block("split_input=True")
    printed = capsys.readouterr().out.strip()
    assert printed == promised_output(block), printed


def test_the_figure_has_a_panel_per_method_with_each_gates_inputs_outlined():
    import matplotlib

    matplotlib.use("Agg")
    from toymi.plot.gate_positions import gate_positions_figure

    rows = [{"gate": [a, b], "method": m, "positions": list(np.eye(4)[a] + np.eye(4)[b])}
            for m in ("exact", "acdc") for a, b in ((0, 1), (2, 3))]
    fig = gate_positions_figure(rows)
    panels = [ax for ax in fig.axes if ax.get_title() in ("exact", "acdc")]
    assert len(panels) == 2 and all(len(ax.patches) == 4 for ax in panels)  # two gates, two inputs each
    with pytest.raises(ValueError, match="no per-gate results"):
        gate_positions_figure([])
