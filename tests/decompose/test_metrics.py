import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from toymi.decompose import metrics as M


def _rotation(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def test_the_truth_itself_scores_exactly_one():
    truth = np.random.default_rng(0).normal(size=(7, 5))
    assert M.mmcs(truth, truth) == pytest.approx(1.0)
    assert M.hungarian_mcc(truth, truth) == pytest.approx(1.0)
    assert M.fraction_recovered(truth, truth) == 1.0
    assert M.ml2r(truth, truth) == pytest.approx(1.0)
    assert M.variance_explained(truth, truth) == 1.0


@pytest.mark.parametrize("theta", [0.1, 0.4, 0.7])
def test_a_rotated_basis_scores_cos_theta(theta):
    truth = np.eye(2)
    learned = truth @ _rotation(theta).T  # each row rotated by θ < 45°: its best match is its own truth
    assert M.mmcs(truth, learned) == pytest.approx(np.cos(theta))
    assert M.mmcs(learned, truth) == pytest.approx(np.cos(theta))
    assert M.hungarian_mcc(learned, truth) == pytest.approx(np.cos(theta))
    assert M.fraction_recovered(learned, truth) == (np.cos(theta) > 0.9)


def test_sign_and_scale_do_not_matter_for_directions_but_scale_does_for_ml2r():
    truth = np.eye(3)
    learned = -2.0 * truth[[2, 0, 1]]
    assert M.mmcs(truth, learned) == pytest.approx(1.0)
    assert M.ml2r(learned, truth) == pytest.approx(2.0)


def test_hungarian_matches_scipy_and_differs_from_mmcs_when_truths_share_a_best_match():
    truth = np.array([[1.0, 0.0], [0.8, 0.6]])
    learned = np.array([[0.96, 0.28], [0.0, 1.0]])  # the first learned row is the best match of both truths
    cos = np.abs(truth @ (learned / np.linalg.norm(learned, axis=1, keepdims=True)).T)
    rows, cols = linear_sum_assignment(-cos)
    assert M.hungarian_mcc(learned, truth) == pytest.approx(cos[rows, cols].mean())
    # by hand: the two matchings give (0.96 + 0.6) / 2 = 0.78 or (0 + 0.936) / 2; the first wins
    assert M.hungarian_mcc(learned, truth) == pytest.approx(0.78)
    assert M.mmcs(truth, learned) == pytest.approx((0.96 + 0.936) / 2)
    assert M.mmcs(truth, learned) > M.hungarian_mcc(learned, truth) + 0.15


def test_code_metrics_on_a_hand_case():
    codes = np.array([[1.0, 0.0, 0.0], [2.0, 3.0, 0.0]])
    assert M.l0(codes) == 1.5
    assert M.dead_fraction(codes) == pytest.approx(1 / 3)
    np.testing.assert_allclose(M.mean_active(codes), [1.5, 3.0, 0.0])
    x = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert M.variance_explained(x, np.full_like(x, 1.0)) == pytest.approx(0.0)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="same width"):
        M.mmcs(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        M.mmcs(np.ones(3), np.eye(3))
