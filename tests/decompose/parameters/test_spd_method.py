"""SPD in the recovery benchmark: `toymi decompose --methods SPD` puts it beside the activation methods, on the truths
whose model it can decompose, and runs it only when named."""

import json

import numpy as np
import pytest

from toymi.cli import main
from toymi.cli.decompose import chosen_methods
from toymi.decompose.methods import DEFAULT_METHODS, METHODS
from toymi.decompose.parameters.method import SPDMethod
from toymi.decompose.settings import synthetic_setting
from toymi.errors import ConfigError


def test_all_means_every_method_but_spd_and_spd_runs_when_named():
    assert "SPD" in METHODS and "SPD" not in DEFAULT_METHODS and len(DEFAULT_METHODS) == len(METHODS) - 1
    assert chosen_methods("all") == list(DEFAULT_METHODS)
    assert chosen_methods("SPD, all") == ["SPD", *DEFAULT_METHODS]
    assert chosen_methods("PCA,PCA,SPD") == ["PCA", "SPD"]
    with pytest.raises(ConfigError, match=r"unknown methods \['spd'\]"):
        chosen_methods("all,spd")
    with pytest.raises(ConfigError, match="names no method"):
        chosen_methods(" , ")


def test_spd_has_no_rows_on_a_truth_without_a_model():
    setting = synthetic_setting(quick=True)
    assert setting.parameters is None and SPDMethod().run(setting, [0, 1], np.zeros((4, 12))) == []


@pytest.mark.slow
def test_toymi_decompose_runs_spd_beside_an_sae(tmp_path, capsys):
    out = tmp_path / "decompose"
    assert main(["decompose", "--quick", "--truths", "tms", "--methods", "SPD,TopK + AuxK", "--seeds", "2",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    spd, sae = results["rows"]
    assert (spd["method"], sae["method"]) == ("SPD", "TopK + AuxK") and spd["truth"] == "tms 5→2"
    assert len(spd["per_seed"]) == 2 and spd["per_seed"][0] != spd["per_seed"][1]  # two seeds, two decompositions
    for seed in spd["per_seed"]:  # score_tms's numbers: MMCS and ML2R on W (main table), the rest in the truth's own
        assert 0.0 <= seed["mmcs"] <= 1.0 and seed["ml2r"] > 0 and seed["alive_norm"] <= 20
    # the paper's TMS 5-2 settings, at the quick step count
    assert {k: results["settings"][0]["spd"][k] for k in ("C", "importance_coef", "p", "steps")} == \
        {"C": 20, "importance_coef": 3e-3, "p": 1.0, "steps": 60}
    table = (out / "table.md").read_text()
    assert "| SPD | tms 5→2 |" in table and "**tms 5→2**: the truth's own scores" in table
