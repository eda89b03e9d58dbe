"""A few real kills of `toymi train` subprocesses (the smoke part of benchmarks/fault_injection.py)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fault_injection.py"


@pytest.mark.slow
@pytest.mark.long(25)
def test_killed_runs_resume_bit_exactly(capsys):
    spec = importlib.util.spec_from_file_location("fault_injection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke"]) == 0, capsys.readouterr().out
    assert '"stuck": 0, "mismatched": 0' in capsys.readouterr().out
