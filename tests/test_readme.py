import pytest
from readme_python import run_python_block


@pytest.mark.slow
def test_readme_python_example_runs():
    """The first Python block of the README is executed as written, so it cannot rot."""
    _, namespace = run_python_block()
    assert namespace["grid"].shape == (4, 2, 3, 113)
    assert namespace["acts"]["resid_pre"].shape == (2, 1, 3, 128)


@pytest.mark.slow
def test_readme_dissection_example_runs():
    """The dissection block (the one that patches) runs as written and its comments' shapes hold."""
    _, namespace = run_python_block("patching_grid")
    assert namespace["lens"].shape == (8, 3, 6, 20)
    assert namespace["dla"].shape == (8, len(namespace["labels"]), 6)
    assert namespace["heads"].shape == (2, 4, 6)
    assert set(namespace["scores"]) >= {"previous_token", "induction"}


@pytest.mark.slow
def test_readme_show_generate_flax_example_runs(capsys):
    """The show / generate / to_nnx block runs as written; its comments' shapes and round trip hold."""
    _, namespace = run_python_block("to_nnx")
    task, out = namespace["task"], namespace["out"]
    assert out.shape == (9,) and task.to_string(out).startswith("12+34=")
    assert [r.position for r in namespace["rows"]] == [5, 6, 7] and len(namespace["rows"][0].top) == 3
    assert namespace["scores"].shape == (1, 2) and namespace["acts"]["resid_pre"].shape == (1, 1, 9, 32)
    assert "input: 12+34=046" in capsys.readouterr().out
