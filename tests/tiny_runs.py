"""Tiny trained runs (seconds each), trained once per test process and read by every test that needs one: the views
(tests/views/conftest.py) and `toymi dissect` (tests/dissect/test_recipes.py) share the grokking and induction runs,
so each is trained, and its training program compiled, once rather than once per test file. Tests only read a run;
one that writes (a dissect report) writes outside it."""

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from toymi.cli import main

ROOT = Path(__file__).parents[1]
# 20 steps, an eval and a checkpoint every 10: three checkpoints (0, 10, 20) for the views' sliders.
FEW = ["--set", "train.steps=20", "--set", "train.eval_every=10", "--set", "train.checkpoint_every=10",
       "--no-progress", "--no-plot"]
TINY = {
    "grokking_quick": ["--set", "task.p=7", "--set", "model.d_model=16", "--set", "model.d_mlp=32",
                       "--set", "model.n_heads=2", "--set", "model.d_head=8"],
    "induction_quick": ["--set", "task.eval_size=16", "--set", "task.batch_size=8", "--set", "model.d_model=16",
                        "--set", "model.d_head=4"],
    "and_gates_quick": ["--set", "task.n_eval=256", "--set", "task.batch_size=64"],
    "addition_quick": ["--set", "task.n_digits=2", "--set", "task.eval_size=32", "--set", "task.batch_size=16",
                       "--set", "model.d_model=16", "--set", "model.d_head=4", "--set", "model.d_mlp=32"],
    "and_gates_transformer_quick": ["--set", "task.n_features=5", "--set", "task.feature_probability=0.6",
                                    "--set", "task.n_eval=64", "--set", "task.batch_size=64", "--set",
                                    "model.d_model=16", "--set", "model.n_heads=2", "--set", "model.d_head=8",
                                    "--set", "model.d_mlp=8"],
}


@functools.cache
def tiny_run(spec: str) -> Path:
    """`tasks/{spec}.toml` trained 20 steps at `TINY[spec]`'s sizes into a directory removed at exit."""
    out = Path(tempfile.mkdtemp(prefix=f"toymi-tiny-{spec}-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    assert main(["train", str(ROOT / "tasks" / f"{spec}.toml"), "--out", str(out / "run"), *FEW, *TINY[spec]]) == 0
    return out / "run"
