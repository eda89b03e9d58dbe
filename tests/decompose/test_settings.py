"""The benchmark's settings and methods: shipped specs, published numbers by truth, methods as objects."""

from pathlib import Path

import numpy as np
import pytest

from toymi.decompose.benchmark import run_benchmark
from toymi.decompose.methods import METHODS, BaselineMethod, Setting
from toymi.decompose.settings import shipped_spec
from toymi.decompose.synthetic import PUBLISHED_MMCS, sparse_dictionary
from toymi.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["compressed_computation_quick", "compressed_computation_2l",
                                  "compressed_computation_3l", "and_gates_quick", "grokking_quick", "induction_quick"])
def test_shipped_specs_are_the_repositorys(name):
    """The package ships copies (an installed toymi has no `tasks/` folder); they must not drift."""
    assert shipped_spec(name).read_text() == (REPO / "tasks" / f"{name}.toml").read_text()


def test_an_unknown_shipped_spec_is_a_clear_error():
    with pytest.raises(ConfigError, match="no shipped spec 'grokking'.*grokking_quick"):
        shipped_spec("grokking")


@pytest.mark.slow
def test_published_numbers_are_the_truths_not_its_names():
    paper = sparse_dictionary()  # Sharkey et al.'s 512→256: numbers per method
    assert paper.published_for("L1 SAE") == {"mmcs": PUBLISHED_MMCS["L1 SAE"]}
    assert paper.published_for("JumpReLU") == {}  # nothing published for it
    other = sparse_dictionary(n_features=24, d=12, n_active=2.0)
    assert other.published_by_method is None and other.published_for("L1 SAE") == {}


@pytest.mark.slow
def test_methods_are_objects_and_any_method_object_runs():
    assert list(METHODS)[:2] == ["L1 SAE", "TopK + AuxK"] and all(m.name == k for k, m in METHODS.items())
    truth = sparse_dictionary(n_features=6, d=4, n_active=1.0)
    calls = []

    def fit(x, n, seed):
        calls.append((x.shape, n, seed))
        return METHODS["PCA"].fit(x, n, seed=seed)

    s = Setting(truth, n_latents=8, k=1, l1=0.1, l0=0.1, steps=10, n_fit=64, n_eval=64)
    rows = run_benchmark([s], [BaselineMethod("my PCA", fit, at_most_d=True)], seeds=(0, 1), log=lambda _: None)
    assert [r["method"] for r in rows] == ["my PCA"] and calls == [((64, 4), 4, 0), ((64, 4), 4, 1)]
    assert np.isfinite(rows[0]["summary"]["mmcs"][0])
    with pytest.raises(ConfigError, match="unknown methods"):
        run_benchmark([s], ["Gated SAE"])


def test_the_table_counts_the_seeds_at_the_truths_bar():
    """`success` per seed (MMCS ≥ 0.99 for an activation method; the truth's own bar for SPD) becomes "k/n"; a row
    with no bar shows "—"; SPD's own bar flags stay out of the truth's own-score table."""
    from toymi.decompose.benchmark import markdown_table

    def row(method, per_seed):
        return {"method": method, "truth": "t", "per_seed": per_seed, "published": {},
                "summary": {k: (float(np.mean([s[k] for s in per_seed])), 0.0) for k in per_seed[0]}}

    table = markdown_table([row("A", [{"mmcs": 0.995, "success": 1.0}, {"mmcs": 0.98, "success": 0.0},
                                      {"mmcs": 0.999, "success": 1.0}]),
                            row("SPD", [{"own_fraction": 0.5, "success": 0.0}]), row("B", [{"l0": 1.0}])])
    lines = {line.split(" | ")[0][2:]: line.split(" | ") for line in table.splitlines()[2:5]}
    assert lines["A"][-3] == "2/3" and lines["SPD"][-3] == "0/1" and lines["B"][-3] == "—"
    assert "| SPD | 0.500 ± 0.000 |" in table and "success |" not in table.split("own scores")[1]


def test_the_spd_papers_truth_names_are_known():
    from toymi.decompose.settings import default_settings

    with pytest.raises(ConfigError, match="tms_5_2_id.*tms_40_10_id.*compressed_2l.*compressed_3l"):
        default_settings(truths=["tms_5_3"])
