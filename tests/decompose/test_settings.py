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


@pytest.mark.parametrize("name", ["compressed_computation_quick", "and_gates_quick", "grokking_quick",
                                  "induction_quick"])
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
