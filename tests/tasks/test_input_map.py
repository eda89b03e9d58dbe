"""Where inputs sit on a task's map (the latents page draws a latent's activation there)."""

import numpy as np
import pytest

from toymi.tasks.chess.tokens import completed_moves, encode_game
from toymi.tasks.input_map import InputMap, cell_means
from toymi.tasks.modular import ModularArithmetic


def test_cell_means_average_each_cells_inputs_and_leave_empty_cells_nan():
    means = cell_means(np.array([1.0, 3.0, 10.0]), np.array([0, 0, 3]), (2, 2))
    np.testing.assert_array_equal(means, [[2.0, np.nan], [np.nan, 10.0]])


def test_modular_map_is_every_pair_in_order():
    for op in ("+", "/"):
        task = ModularArithmetic(p=7, op=op, frac_train=0.5)
        where = task.input_map()
        np.testing.assert_array_equal(where.tokens, np.asarray(task.all_pairs().tokens))
        assert where.shape == (7, 7 if op == "+" else 6) and (where.cells == np.arange(len(where.tokens))).all()
        assert (where.positions == 2).all()


def test_chess_moves_are_placed_on_the_square_moved_to_and_read_where_they_complete():
    # e2e4 e7e5, then a promotion: BOS e2 e4 e7 e5 ... a7 a8 =q completes at its promotion token
    game = encode_game(["e2e4", "e7e5"])
    promo = encode_game(["a7a8q"])
    tokens = np.zeros((2, max(len(game), len(promo))), np.int32)
    tokens[0, :len(game)], tokens[1, :len(promo)] = game, promo
    games, positions, squares = completed_moves(tokens)
    assert games.tolist() == [0, 0, 1]
    assert positions.tolist() == [2, 4, 3]  # BOS e2 e4 | e7 e5 ; BOS a7 a8 =q
    assert squares.tolist() == [28, 36, 56]  # e4, e5, a8 in python-chess numbering (a1 = 0)


def test_an_input_map_refuses_cells_off_the_map():
    with pytest.raises(ValueError, match="cells must be in"):
        InputMap(np.zeros((2, 3), np.int32), np.zeros(2, int), np.array([0, 4]), (2, 2), ("r", "c"))
