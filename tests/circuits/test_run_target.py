"""`toymi circuits RUN`: discovery on a trained run's own inputs (no known circuit: AUC left out, not invented), and
a clear error for a run that has no edge graph."""

import json
from pathlib import Path

import pytest

from toymi.cli import main

ROOT = Path(__file__).parents[2]
FEW = ["--set", "train.steps=10", "--set", "train.eval_every=10", "--set", "train.checkpoint_every=10",
       "--no-progress", "--no-plot"]
TINY_GROKKING = ["--set", "task.p=7", "--set", "model.d_model=16", "--set", "model.d_mlp=32", "--set",
                 "model.n_heads=2", "--set", "model.d_head=8"]


@pytest.mark.slow
def test_circuits_on_a_run_scores_its_own_inputs_without_a_truth(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "tasks" / "grokking_quick.toml"), "--out", str(run), *FEW, *TINY_GROKKING]) == 0
    assert main(["circuits", str(run), "--methods", "exact,eap"]) == 0
    out = run / "circuits"  # the default output directory of a run
    scores = json.loads((out / "scores.json").read_text())
    assert scores["true_edges"] is None and [m["method"] for m in scores["methods"]] == ["exact", "eap"]
    assert all(m["auc"] is None for m in scores["methods"])
    # 1 layer, 2 heads: input -> q, k, v of each head and the MLP, the heads and MLP -> logits, ...
    assert len(scores["methods"][0]["scores"]) > 8
    table = (out / "table.md").read_text()
    assert "| exact | – |" in table and "the true circuit is not known" in table
    assert (out / "circuit_eap.png").stat().st_size > 1000


@pytest.mark.slow
def test_circuits_on_a_run_without_an_edge_graph_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "tms"
    assert main(["train", str(ROOT / "tasks" / "tms_quick.toml"), "--out", str(run), *FEW,
                 "--set", "task.eval_size=64", "--set", "task.batch_size=32"]) == 0
    capsys.readouterr()
    assert main(["circuits", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "circuit discovery needs a transformer" in err and "tms" in err
