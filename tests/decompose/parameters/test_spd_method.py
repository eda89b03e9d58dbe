"""SPD in the recovery benchmark: `toymi decompose --methods SPD` puts it beside the activation methods, on the truths
whose model it can decompose, and runs it only when named (the command end to end, SPD beside a transcoder and the
neuron basis: tests/decompose/test_baselines.py::test_the_decompose_command_scores_a_trained_model)."""

import numpy as np
import pytest

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
