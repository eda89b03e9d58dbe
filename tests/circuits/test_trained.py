"""The induction truth stated from head scores finds exactly the planted induction circuit."""

import pytest

from toymi.circuits.planted import copy_first, induction
from toymi.circuits.trained import induction_truth


@pytest.mark.slow
def test_induction_truth_recovers_the_planted_circuit():
    p = induction()
    truth = induction_truth(p.model, p.clean)
    assert truth.previous_token_heads == ("a0.h0",) and truth.induction_heads == ("a1.h0",)
    assert sorted(truth.certain + truth.judged) == sorted(p.true_edges)
    assert set(truth.judged) == {"input->a0.h0<q>", "input->a0.h0<k>"}


def test_induction_truth_refuses_a_model_it_is_not_stated_for():
    with pytest.raises(ValueError, match="2-layer"):
        induction_truth(copy_first().model, copy_first().clean)
