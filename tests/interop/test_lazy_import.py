"""toymi.interop.transformer_lens imports without torch / transformer_lens; using it without them is one clear line."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.modules["torch"] = None  # as if not installed
sys.modules["transformer_lens"] = None
import jax, toymi
from toymi.interop import transformer_lens as interop
model = toymi.Transformer(toymi.ModelConfig(d_vocab=5, n_ctx=4, d_model=8, n_heads=2), jax.random.PRNGKey(0))
try:
    interop.to_transformer_lens(model)
except ImportError as e:
    print("ERR", e)
"""


@pytest.mark.slow  # a fresh interpreter importing jax
def test_imports_without_torch_and_says_what_to_install():
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={"PYTHONPATH": str(ROOT), "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip()
    assert line.startswith("ERR") and "\n" not in line and "pip install 'transformer-lens==3.9.*' torch" in line
