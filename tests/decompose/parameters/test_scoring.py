import numpy as np
import pytest

from toymi.decompose.parameters.scoring import (
    alive_by_importance, alive_by_norm, column_mmcs_ml2r, own_subcomponents,
)


def _columns(W, scale):
    """One rank-1 subcomponent per column of W, scaled: P_j = scale_j · W[:, j] e_jᵀ."""
    n = W.shape[1]
    return np.stack([np.outer(W[:, j] * scale[j], np.eye(n)[j]) for j in range(n)])


def test_column_scores_of_an_exact_and_a_shrunk_decomposition():
    W = np.asarray([[1.0, 0.0, -2.0], [0.0, 3.0, 1.0]])
    assert column_mmcs_ml2r(W, _columns(W, [1, 1, 1])) == pytest.approx((1.0, 1.0))
    mmcs, ml2r = column_mmcs_ml2r(W, _columns(W, [0.9, 0.9, 1.2]))
    assert (mmcs, ml2r) == pytest.approx((1.0, 1.0))
    mmcs, ml2r = column_mmcs_ml2r(W, _columns(W, [0.5, 1.0, 1.0]))
    assert ml2r == pytest.approx((0.5 + 1 + 1) / 3)


def test_column_scores_of_a_rotated_and_a_sign_flipped_column():
    W = np.eye(2)
    P = _columns(W, [1, 1])
    theta = 0.3
    P[0] = np.outer([np.cos(theta), np.sin(theta)], [1, 0])  # column 0 found 0.3 rad off
    mmcs, ml2r = column_mmcs_ml2r(W, P)
    assert mmcs == pytest.approx((np.cos(theta) + 1) / 2) and ml2r == pytest.approx(1.0)
    P[1] = -P[1]  # the negated column is not the mechanism: nothing else writes column 1, so its best cosine is 0
    assert column_mmcs_ml2r(W, P)[0] == pytest.approx(np.cos(theta) / 2)
    with pytest.raises(ValueError, match="must be"):
        column_mmcs_ml2r(W, P[:, :1])


def test_column_scores_skip_a_feature_the_model_dropped():
    W = np.asarray([[1.0, 0.0], [0.0, 0.0]])
    P = np.stack([np.outer([0.8, 0.0], [1, 0])])
    assert column_mmcs_ml2r(W, P) == pytest.approx((1.0, 0.8))


def test_alive_counts():
    assert alive_by_norm(np.asarray([1.0, 0.5, 0.09, 0.0])) == 2
    ci = np.asarray([[0.0, 0.2, 0.05], [0.0, 0.0, 0.09]])
    assert alive_by_importance(ci) == 1
    assert alive_by_importance(ci, threshold=0.01) == 2


def test_own_subcomponents_of_a_hand_made_importance_table():
    ci = np.asarray([
        [1.0, 0.0, 0.0, 0.0],  # feature 0: subcomponent 0, its own
        [0.0, 0.9, 0.0, 0.0],  # feature 1: subcomponent 1, its own
        [0.0, 0.0, 1.0, 0.0],  # features 2 and 3 share subcomponent 2: neither owns it
        [0.0, 0.0, 0.7, 0.0],
        [0.0, 0.0, 0.0, 0.0],  # feature 4: nothing important
        [0.6, 0.0, 0.0, 0.0],  # feature 5 also uses 0, so 0 is no longer feature 0's own
    ])
    np.testing.assert_array_equal(own_subcomponents(ci), [-1, 1, -1, -1, -1, -1])
    np.testing.assert_array_equal(own_subcomponents(ci[:5]), [0, 1, -1, -1, -1])
    two = np.asarray([[1.0, 1.0], [0.0, 0.0]])  # two important subcomponents for one feature: not one of its own
    np.testing.assert_array_equal(own_subcomponents(two), [-1, -1])
