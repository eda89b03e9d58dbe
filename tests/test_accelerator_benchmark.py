"""`benchmarks/accelerator.py --smoke`: every section of the accelerator check runs tiny on the CPU, so the script
that is run on a lent GPU cannot rot between the sessions that have one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.long(20)
def test_accelerator_check_smoke(tmp_path):
    pytest.importorskip("torch")
    # every warning an error, but a read of a shared compilation-cache entry that another process is still writing
    # (JAX compiles the program instead; pyproject.toml's filterwarnings says why)
    scratch = tmp_path / "tmp"  # its temporary directories (the chess games, the grokking runs) must not outlive it
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch),
           "PYTHONWARNINGS": "error,ignore:Error reading persistent compilation cache entry:UserWarning"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "accelerator.py"), "--smoke", "--out",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    left = sorted(p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor"))  # torch's own cache
    assert not left, left
    report = json.loads((tmp_path / "accelerator.json").read_text())
    for section in ("grokking", "sweep", "tms", "sae", "chess"):
        assert "error" not in report[section], (section, report[section])
    assert report["grokking"]["exact"]["epochs"] == 20
    assert len(report["grokking"]["exact"]["test_loss_curve"]) == 3  # steps 0, 10, 20
    assert set(report["grokking"]["exact"]["progress"]["phases"]) == {"memorisation_end", "cleanup_start",
                                                                      "cleanup_end"}
    assert (tmp_path / "progress_exact.png").stat().st_size > 10_000
    assert report["sweep"]["members"] == 2 and report["sweep"]["speedup"] > 0
    assert report["chess"]["step_ms"] > 0
    table = (tmp_path / "accelerator.md").read_text()
    assert "grokking.toml, 20 epochs, exact loss" in table and "failed" not in table
