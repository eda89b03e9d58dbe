"""Every notebook runs top to bottom in smoke mode (TOYMI_SMOKE=1: tiny settings), so none can rot."""

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.fixture(scope="module")
def kernel():
    """One Jupyter kernel for the notebooks this test process runs: each notebook starts with its names cleared
    (`%reset -f`), its figures closed and its own working directory, so it sees what a fresh kernel would show it,
    while JAX, toymi and the programs already compiled stay loaded (a kernel's start-up and imports cost ~4 s of the
    ~15 s a smoke run takes). A notebook that fails takes the kernel down with it, so the next starts afresh."""
    shared = {"owner": None}
    yield shared
    if shared["owner"] is not None:
        shared["owner"]._cleanup_kernel()


@pytest.mark.slow
@pytest.mark.long(12)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch, kernel):
    monkeypatch.setenv("TOYMI_SMOKE", "1")  # read when the kernel starts (the first notebook's)
    notebook = nbformat.read(path, as_version=4)
    fresh = (f"%reset -f\nimport os as _os, matplotlib.pyplot as _plt\n_plt.close('all')\n_os.chdir({str(tmp_path)!r})"
             "\ndel _os, _plt")
    notebook.cells.insert(0, nbformat.v4.new_code_cell(fresh))
    owner = kernel["owner"]
    client = nbclient.NotebookClient(notebook, km=owner.km if owner else None, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    if owner:  # the running kernel's client (not a constructor argument of NotebookClient)
        client.kc = owner.kc
    try:
        client.execute(cleanup_kc=False)  # raises CellExecutionError, with the failing cell, if any cell fails
    except BaseException:
        (owner or client)._cleanup_kernel()
        kernel["owner"] = None
        raise
    kernel["owner"] = owner or client
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
