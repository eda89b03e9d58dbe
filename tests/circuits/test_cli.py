"""`toymi circuits`: table, JSON scores and drawings for a planted circuit; clear errors for bad arguments."""

import json

import pytest

from toymi.cli import main


@pytest.mark.slow
def test_circuits_command_writes_table_scores_and_drawings(tmp_path):
    assert main(["circuits", "copy_first", "--methods", "exact,acdc", "--out", str(tmp_path)]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert [m["method"] for m in scores["methods"]] == ["exact", "acdc"]
    for m in scores["methods"]:
        assert m["auc"] == 1.0
        assert sorted(m["circuit"]) == sorted(scores["true_edges"])
    assert "| exact | 1.000 |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "circuit_exact.png").stat().st_size > 1000


def test_circuits_command_rejects_unknown_targets_and_methods(tmp_path, capsys):
    assert main(["circuits", "ioi", "--out", str(tmp_path)]) == 2
    assert "planted circuits are: induction, copy_first, and_gate" in capsys.readouterr().err
    assert main(["circuits", "copy_first", "--methods", "exact,magic", "--out", str(tmp_path)]) == 2
    assert "unknown methods ['magic']" in capsys.readouterr().err


@pytest.mark.slow
def test_readme_circuit_example_runs(capsys):
    """The README's circuit-discovery block runs as written and prints what its comment says."""
    from readme_python import run_python_block

    _, namespace = run_python_block("edge_patching(")
    assert namespace["graph"].n_edges == 29
    auc, cpr = capsys.readouterr().out.split()
    assert float(auc) == 1.0 and cpr.startswith("0.78")


@pytest.mark.slow  # ~6 s: trains a tiny run, then the graphs and the page
def test_circuits_command_scores_a_residual_mlps_attribution_graphs(tmp_path, capsys):
    """An AND-gate residual MLP: its own neurons' graphs scored against the 45 gates' inputs, the page written;
    edge-discovery methods are refused for it."""
    from tiny_runs import tiny_run

    run = tiny_run("and_gates_quick")
    assert main(["circuits", str(run), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "attribution graphs through the model's own neurons (exact)" in table and "\n| 45 | " in table
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert len(scores["auc"]) == len(scores["on_true"]) == 45
    assert scores["completeness_gap"] < 1e-3  # the model's own neurons: the graph adds up to the model's outputs
    assert all(0.0 <= v <= 1.0 for v in scores["on_true"] if v == v)
    assert "toymiData" in (tmp_path / "attribution.html").read_text()
    assert main(["circuits", str(run), "--methods", "exact", "--out", str(tmp_path)]) == 2
    assert "edge-discovery methods (--methods) and --transcoders apply to transformers only" in capsys.readouterr().err
    assert main(["circuits", str(run), "--transcoders", "16", "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_circuits_command_on_an_induction_run_adds_its_attribution_tables(tmp_path):
    """`toymi circuits RUN` on a (tiny, barely trained) induction run: edge discovery on its own inputs, then the
    graph / ablation shares and the QK table of whichever head attends most to s, each row's shares summing to 1."""
    from tiny_runs import tiny_run

    assert main(["circuits", str(tiny_run("induction_quick")), "--methods", "eap", "--out", str(tmp_path)]) == 0
    scores = json.loads((tmp_path / "attribution.json").read_text())
    for how in ("graph", "ablation"):
        assert sum(scores[how][k] for k in ("s", "s-1", "t", "other")) == pytest.approx(1.0, abs=1e-5)
        assert scores[how]["traced"] > 0
    assert scores["qk"]["traced"] > 0 and 0.0 <= scores["qk"]["t, s-1"] <= scores["qk"]["t, any"] <= 1.0
    assert "| eap |" in (tmp_path / "table.md").read_text()
    assert "Why it attends" in (tmp_path / "attribution.md").read_text()


@pytest.mark.slow
def test_circuits_command_per_digit_on_an_addition_run(tmp_path, capsys):
    """`--per-digit` on a (tiny) addition run writes each method's per-digit scores; on another run it is refused."""
    from tiny_runs import tiny_run

    run = tiny_run("addition_quick")
    assert main(["circuits", str(run), "--methods", "eap", "--per-digit", "--out", str(tmp_path)]) == 0
    scores = json.loads((tmp_path / "digits.json").read_text())
    assert [r["method"] for r in scores["methods"]] == ["eap"] and scores["inputs"] == 16
    assert [(r["digit"], r["method"]) for r in scores["per_digit"]] == [(0, "eap"), (1, "eap")]
    assert "| eap | 2 |" in (tmp_path / "digits.md").read_text()
    assert main(["circuits", "copy_first", "--per-digit", "--out", str(tmp_path)]) == 2
    assert "--per-digit needs an addition run" in capsys.readouterr().err
