"""What stands in for a transformer's MLPs in its attribution graphs: its own neurons (exact) or trained
transcoders, with their FVU; and `toymi circuits RUN --transcoders`, which a SoLU model needs."""

import json
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from tiny_runs import tiny_run
from transformer_models import model

from toymi.circuits.replacement import own_neurons, replacement_for, trained_transcoders
from toymi.cli import main
from toymi.errors import ConfigError
from toymi.tasks.induction import Induction


def test_own_neurons_are_exact_and_a_solu_mlp_has_no_replacement_without_transcoders():
    relu = own_neurons(model(1, "none"))
    assert len(relu.transcoders) == 1 and relu.exact and relu.fvu == (0.0,) and "exact" in relu.description
    gelu = model(2, "none", act_fn="gelu")  # every neuron a latent, frozen at its gate: value / pre-activation
    own = replacement_for(gelu, None, None)
    assert own.exact and own.description == "the model's own neurons (gelu, each frozen at its gate; exact)"
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 16))
    mlp = gelu.blocks.mlp  # the neurons predict the MLP exactly (a splice changes nothing)
    want = jax.nn.gelu(x @ mlp.W_in[1] + mlp.b_in[1], approximate=False) @ mlp.W_out[1] + mlp.b_out[1]
    np.testing.assert_allclose(own.transcoders[1].predict(x), want, rtol=1e-5, atol=1e-6)
    solu, attention_only = model(1, "none", act_fn="solu"), model(1, "none", d_mlp=0)
    assert replacement_for(solu, None, None) is None  # its softmax mixes the neurons: no gate of their own
    assert replacement_for(attention_only, None, None).transcoders == ()  # nothing to replace
    with pytest.raises(ValueError, match="at least 1 latent"):
        trained_transcoders(solu, None, n_latents=0)
    with pytest.raises(ValueError, match="no MLP to replace"):
        trained_transcoders(attention_only, None, n_latents=16)


def test_transcoders_are_refused_where_no_graph_would_use_them(tmp_path, capsys):
    from toymi.reports.circuits import _graph_replacement

    induction = SimpleNamespace(model=model(1, "none", d_mlp=0), task=Induction(vocab=8, subseq_len=4, n_repeats=2))
    with pytest.raises(ConfigError, match="attention-only model, with no MLP to replace"):
        _graph_replacement(induction, "RUN", 16, studies=[])
    grokking = SimpleNamespace(model=model(1, "none"), task=SimpleNamespace(known_circuit=None))
    with pytest.raises(ConfigError, match="draws no attribution graphs"):
        _graph_replacement(grokking, "RUN", 16, studies=[])
    assert main(["circuits", "copy_first", "--transcoders", "16", "--out", str(tmp_path)]) == 2
    assert "--transcoders applies to a run directory" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.long(10)  # transcoders trained on a tiny run, its graphs and page
def test_toymi_circuits_traces_the_graphs_through_transcoders_it_trains(tmp_path, capsys, monkeypatch):
    """With `--transcoders`, an AND-gate transformer's graphs are traced through transcoders trained on it, one per
    layer (here the tiny ReLU run the views' tests share), complete up to float error (the error nodes hold what
    the transcoders miss), their FVU and error share reported, the page drawn through them; they are saved with
    the run, and the same command again loads them. Without a replacement (a SoLU MLP without `--transcoders`) the
    report says how to get one and leaves no earlier graphs behind."""
    import shutil

    import toymi.circuits.replacement as replacement
    import toymi.circuits.saved_replacement as saved
    from toymi.reports import attribution
    from toymi.run import load_run

    run = tmp_path / "run"  # a copy: the transcoders are saved into the run, and the tiny run is shared
    shutil.copytree(tiny_run("and_gates_transformer_quick"), run)
    out = tmp_path / "tc"
    out.mkdir()
    for stale in ("attribution.json", "attribution.html"):  # an earlier report's graphs, not to be left behind
        (out / stale).write_text("{}")
    assert "pass --transcoders N" in attribution.gate_attribution_report(load_run(run), out, None)
    assert "pass --transcoders N" in (out / "attribution.md").read_text()
    assert not (out / "attribution.json").exists() and not (out / "attribution.html").exists()
    monkeypatch.setattr(replacement, "TRANSCODER_STEPS", 50)  # seconds, not the minute of the default 2,000
    monkeypatch.setattr(attribution, "N_EXAMPLES", 128)
    assert main(["circuits", str(run), "--methods", "node_attribution", "--transcoders", "16", "--out", str(out)]) == 0
    scores = json.loads((out / "attribution.json").read_text())
    assert scores["replacement"].startswith("trained transcoders (16 latents per layer, 50 steps")
    assert len(scores["fvu"]) == 1 and 0.0 < scores["fvu"][0] < 1.0 and scores["train_seconds"] > 0
    assert scores["n_examples"] == 128
    for baseline in ("none", "all off"):
        assert scores[baseline]["completeness_gap"] < 1e-3 and len(scores[baseline]["auc"]) == 10
        assert all(0.0 < e < 1.0 for e in scores[baseline]["error_share"])
    table = (out / "attribution.md").read_text()
    assert "through trained transcoders (16 latents per layer" in table and "| error share |" in table
    page = (out / "attribution.html").read_text()  # the page drawn through the same transcoders
    assert "Trained transcoders (16 latents per layer" in page and "the error nodes hold what it misses" in page
    assert json.loads((run / "transcoders" / "transcoders.json").read_text())["settings"]["steps"] == 50
    monkeypatch.setattr(saved, "trained_transcoders", None)  # `--transcoders 16` again: loaded, not trained
    again = saved.replacement_for_run(load_run(run), 16)
    assert again.loaded_from == str(run / "transcoders") and again.fvu == tuple(scores["fvu"])
    assert attribution._trained(again).startswith(f"; the transcoders loaded from {run / 'transcoders'} (trained in")
    assert main(["circuits", str(run), "--transcoders", "0", "--out", str(tmp_path / "x")]) == 2
    assert "latent count >= 1" in capsys.readouterr().err
