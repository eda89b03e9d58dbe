"""Tasks name the circuit they state (`Task.known_circuit`); `toymi.circuits`, its report and its pages choose a run's
target, studies and attribution page by that name, so no task class is switched on."""

from types import SimpleNamespace

import pytest

from toymi.circuits import targets
from toymi.errors import ConfigError
from toymi.reports import circuits as report
from toymi.tasks import TASKS


def _run(circuit: str | None, kind: str = "transformer"):
    return SimpleNamespace(task=SimpleNamespace(known_circuit=circuit), model=SimpleNamespace(kind=kind))


def test_each_task_names_the_circuit_it_states_and_every_other_names_none():
    named = {name: cls.known_circuit for name, cls in TASKS.items() if cls.known_circuit is not None}
    assert named == {"induction": "induction", "and_gates": "and_gates", "addition": "addition"}
    assert set(targets._STATED_TARGETS) <= set(named.values())


@pytest.mark.parametrize("flag, circuit", [("per_gate", "and_gates"), ("per_digit", "addition")])
def test_a_study_is_chosen_by_the_runs_stated_circuit(flag, circuit):
    (study,) = report._studies_asked(_run(circuit), "RUN", **{"per_gate": False, "per_digit": False, flag: True})
    assert study.circuit == circuit and study.flag == "--" + flag.replace("_", "-")
    for other in ("induction", None, "and_gates" if circuit == "addition" else "addition"):
        with pytest.raises(ConfigError, match=f"^{study.flag} needs .*; RUN is not one$"):
            report._studies_asked(_run(other), "RUN", **{"per_gate": False, "per_digit": False, flag: True})
    with pytest.raises(ConfigError, match=f"^{study.flag} needs"):  # the same task on a residual MLP
        report._studies_asked(_run(circuit, "residual_mlp"), "RUN", **{"per_gate": False, "per_digit": False,
                                                                        flag: True})
