"""Tiny trained runs (seconds each) shared by the view tests, and the browser (skipped where none exists)."""

from pathlib import Path

import pytest

from toymi.cli import main

ROOT = Path(__file__).parents[2]
FEW = ["--set", "train.steps=20", "--set", "train.eval_every=5", "--set", "train.checkpoint_every=5",
       "--no-progress", "--no-plot"]
TINY = {
    "grokking_quick": ["--set", "task.p=7", "--set", "model.d_model=16", "--set", "model.d_mlp=32",
                       "--set", "model.n_heads=2", "--set", "model.d_head=8"],
    "induction_quick": ["--set", "task.eval_size=16", "--set", "task.batch_size=8", "--set", "model.d_model=16",
                        "--set", "model.d_head=4"],
}


def tiny_run(spec: str, out: Path) -> Path:
    assert main(["train", str(ROOT / "tasks" / f"{spec}.toml"), "--out", str(out), *FEW, *TINY[spec]]) == 0
    return out


@pytest.fixture(scope="session")
def grokking_run(tmp_path_factory):
    return tiny_run("grokking_quick", tmp_path_factory.mktemp("views") / "grokking")


@pytest.fixture(scope="session")
def induction_run(tmp_path_factory):
    return tiny_run("induction_quick", tmp_path_factory.mktemp("views") / "induction")


@pytest.fixture(scope="session")
def chromium():
    from views.browser import browser, chromium_or_skip

    sync_playwright, path = chromium_or_skip()
    with browser(sync_playwright, path) as b:
        yield b
