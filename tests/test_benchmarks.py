"""Every benchmark script with a `--smoke` mode runs end to end on tiny sizes, so none can rot unnoticed.

(`benchmarks/accelerator.py --smoke` has its own test, with checks of its report, in test_accelerator_benchmark.py.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script -> (modules it cannot run without, the results file its smoke run writes)
SMOKE = {
    "capture_overhead": (("torch", "transformer_lens"), "capture_overhead.json"),
    "startup": ((), "startup.json"),
    "edge_patching": (("torch", "transformer_lens"), "edge_patching.json"),
    "spd_masked_speed": ((), "spd_masked_speed.json"),
    "spd_torch_speed": (("torch",), "spd_torch_speed.json"),
    "attribution_graphs": ((), "attribution_graphs.json"),
}


def test_the_smoke_table_names_existing_scripts_with_a_smoke_mode():
    for name in SMOKE:
        assert "--smoke" in (ROOT / "benchmarks" / f"{name}.py").read_text(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_smoke_mode_runs(name, tmp_path):
    needs, results = SMOKE[name]
    for module in needs:
        pytest.importorskip(module)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / results).read_text())
    assert report["benchmark"] == name
    assert report["total_runtime_s"] > 0


def test_readme_attribution_table_is_the_committed_results_file():
    """README's attribution-graph table is `benchmarks/attribution_graphs.py`'s summary of its committed results,
    line for line: rerunning the benchmark rewrites the file, and this fails until README states the new numbers."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from attribution_graphs import summary

    rows = json.loads((ROOT / "benchmarks" / "results" / "attribution_graphs.json").read_text())["rows"]
    readme = (ROOT / "README.md").read_text()
    for line in summary(rows).splitlines():
        assert line in readme, f"README lacks this line of the attribution-graph table: {line}"
