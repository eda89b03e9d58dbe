"""The AND-gate transformer as a circuit-discovery target: the gate margin, the edges the task rules out (exactly
zero under patching), and `toymi circuits RUN` on an AND-gate run."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.circuits.forward import graph_of
from toymi.circuits.patching import edge_patching
from toymi.circuits.targets import GateMargin, certain_absences
from toymi.cli import main
from toymi.errors import ConfigError
from toymi.tasks.and_gates import AndGates, encode_tokens

ROOT = Path(__file__).parents[2]


def test_the_gate_margin_weighs_on_and_off_gates_half_each():
    on = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # one gate on among six gate values
    logits = jnp.zeros((2, 4, 3)).at[:, -1].set(jnp.array([[2.0, -1.0, 3.0], [-4.0, -1.0, -1.0]]))
    margin = GateMargin(on)
    # on: +2 (weight 1/2); off: -(-1) - 3 + 4 + 1 + 1 = 4 over 5 values (weight 1/10 each)
    assert float(margin(logits)) == pytest.approx(0.5 * 2.0 + 0.5 * 4.0 / 5)
    assert float(margin.accuracy(logits)) == pytest.approx(5 / 6)  # gate 2 of example 0 is off but scored on
    assert float(margin(logits.at[:, :-1].set(100.0))) == pytest.approx(float(margin(logits)))  # last position only
    for constant in (jnp.zeros((2, 3)), jnp.ones((2, 3))):
        with pytest.raises(ConfigError, match="some gates are on and some off"):
            GateMargin(constant)


def test_certain_absences_of_a_one_layer_model():
    one = toymi.ModelConfig(d_vocab=13, n_ctx=7, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=8, d_vocab_out=15)
    assert certain_absences(graph_of(one)) == ("input->a0.h0<q>", "input->a0.h1<q>", "input->m0", "input->logits")


@pytest.mark.slow
def test_exact_patching_gives_the_ruled_out_edges_exactly_zero_and_others_not():
    task = AndGates(n_features=6, n_eval=64)
    config = toymi.ModelConfig(d_vocab=13, n_ctx=7, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=8,
                               d_vocab_out=task.n_gates)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    tokens = encode_tokens(task.eval_set.x[:16])
    effects = edge_patching(model, tokens[:8], tokens[8:], GateMargin(task.eval_set.y[:8]), direction="noising")
    effect = np.asarray(effects.effect)
    absent = graph_of(config).edge_set(certain_absences(graph_of(config)))
    # zero up to float32 rounding of the metric (the patched residual sum is formed in another order)
    assert np.abs(effect[absent]).max() < 1e-6
    assert np.abs(effect[~absent]).min() > 1e-4  # a random model: every other edge moves the margin


@pytest.mark.slow
def test_toymi_circuits_runs_on_an_and_gate_transformer(tmp_path, capsys):
    from tiny_runs import tiny_run

    run = tiny_run("and_gates_transformer_quick")  # 5 features, each on with p = 0.6: every gate on in 32 inputs
    out = tmp_path / "circuits"  # the shared run is only read
    assert main(["circuits", str(run), "--methods", "exact,eap", "--per-gate", "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["true_edges"] is None and all(m["auc"] is None for m in scores["methods"])
    for method in scores["methods"]:  # EAP's gradient through a ruled-out edge is zero too
        assert all(abs(method["scores"][e]) < 1e-6 for e in ("input->a0.h0<q>", "input->m0", "input->logits"))
        assert max(abs(v) for v in method["scores"].values()) > 1e-3
    assert scores["ruled_out_edges"] == ["input->a0.h0<q>", "input->a0.h1<q>", "input->m0", "input->logits"]
    table = (out / "table.md").read_text()
    assert "gate margin" in table and "patching cannot change input->a0.h0<q>" in table
    exact = next(line for line in table.splitlines() if line.startswith("| exact |"))
    assert "ruled-out edges kept (of 4) |" in table and exact.split("|")[6].strip() == "0"
    gates = json.loads((out / "gates.json").read_text())
    assert gates["inputs"] == 32 and len(gates["per_gate"]) == 2 * 10  # two methods, every pair of 5 features
    assert all(len(g["positions"]) == len(g["in_circuit"]) == 5 and g["absent_kept"] == 0 for g in gates["per_gate"])
    assert [m["method"] for m in gates["methods"]] == ["exact", "eap"]
    assert "| exact | 10 |" in (out / "gates.md").read_text()
    assert (out / "gates.png").stat().st_size > 0
    graphs = json.loads((out / "attribution.json").read_text())  # its gates as attribution graphs
    assert len(graphs["none"]["auc"]) == len(graphs["all off"]["auc"]) == 10 and graphs["n_examples"] == 8192
    assert "| the all-off sequence |" in (out / "attribution.md").read_text()
    assert "toymiData" in (out / "attribution.html").read_text()  # and the page, through the same neurons
    assert main(["circuits", "and_gate", "--per-gate"]) == 2  # a planted circuit has no gates to study
    assert "--per-gate needs an AND-gate transformer run" in capsys.readouterr().err
