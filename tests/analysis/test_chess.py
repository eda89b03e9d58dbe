"""Chess board probes at completed-move positions: labels, positions, baselines, and a probe that must read a board."""

import json
import runpy
import sys
from pathlib import Path

import chess
import jax
import numpy as np
import pytest

import toymi

from toymi.analysis.chess import (START, board_examples, capture_examples, completed_move_mask,
                                        concat_examples, fit_board_probes, majority_scores, move_counts, to_frame)
from toymi.dissect.probes import capture_site
from toymi.tasks.chess.generate import Players, play_games, record_moves
from toymi.tasks.chess.tokens import encode_game

ROOT = Path(__file__).parents[2]
# A capture, a recapture by the queen, both castlings, a bishop pin: colours and pieces move around.
GAME = ["e2e4", "d7d5", "e4d5", "d8d5", "b1c3", "d5a5", "g1f3", "c8g4", "f1e2", "b8c6", "e1g1", "e8c8"]
# A promotion (with capture) and then a capture of the new queen.
PROMOTION = ["h2h4", "g7g5", "h4g5", "h7h6", "g5h6", "a7a6", "h6h7", "a6a5", "h7g8q", "h8g8"]


def relative_class(piece: chess.Piece | None, turn: chess.Color) -> int:
    if piece is None:
        return 0
    return piece.piece_type + (0 if piece.color == turn else 6)


@pytest.mark.parametrize("moves", [GAME, PROMOTION])
def test_relative_labels_match_a_python_chess_replay(moves):
    record = record_moves(moves, len(moves) + 1)  # room for a promotion token
    examples = board_examples(record["tokens"][None], record["boards"][None], "relative")
    absolute = board_examples(record["tokens"][None], record["boards"][None], "absolute")
    board = chess.Board()
    assert len(examples.pos) == len(moves)  # one example per completed move
    for i, move in enumerate(moves):
        board.push_uci(move)
        expected = [relative_class(board.piece_at(s), board.turn) for s in chess.SQUARES]
        np.testing.assert_array_equal(examples.labels[i], expected, err_msg=f"after {move}")
        expected_abs = [0 if board.piece_at(s) is None else board.piece_at(s).piece_type + 6 * (not board.piece_at(
            s).color) for s in chess.SQUARES]
        np.testing.assert_array_equal(absolute.labels[i], expected_abs, err_msg=f"after {move}")


def test_hand_checked_squares():
    record = record_moves(GAME, len(GAME))
    ex = board_examples(record["tokens"][None], record["boards"][None], "relative")
    # After 1. e4 (black to move): e4 holds *their* pawn (7), e7 *my* pawn (1), e2 is empty and changed.
    assert (ex.labels[0, chess.E4], ex.labels[0, chess.E7], ex.labels[0, chess.E2]) == (7, 1, 0)
    assert ex.changed[0].sum() == 2 and ex.changed[0, chess.E4] and ex.changed[0, chess.E2]
    # After 3...Qxd5 (white to move, ply 4): the black queen on d5 is theirs (11), the white king on e1 mine (6).
    assert (ex.labels[3, chess.D5], ex.labels[3, chess.E1], ex.labels[3, chess.D8]) == (11, 6, 0)
    # After 6. O-O (black to move): king g1 and rook f1 are theirs (12, 10); after 6...O-O-O (white to move) the
    # black king on c8 and rook on d8 are theirs, the white king on g1 mine.
    assert (ex.labels[10, chess.G1], ex.labels[10, chess.F1], ex.labels[10, chess.E1]) == (12, 10, 0)
    assert (ex.labels[11, chess.C8], ex.labels[11, chess.D8], ex.labels[11, chess.G1]) == (12, 10, 6)
    # After 2. exd5 the pawn has left e4: empty as at the start, so unchanged; d5 holds their (white) pawn.
    assert ex.labels[2, chess.E4] == 0 and not ex.changed[2, chess.E4]
    assert ex.labels[2, chess.D5] == 7 and ex.changed[2, chess.D5]


def test_completed_move_positions():
    tokens = np.stack([np.pad(encode_game(PROMOTION), (0, 3)), np.pad(encode_game(GAME[:3]), (0, 18))])
    mask = completed_move_mask(tokens)
    # Two tokens a move; the promotion h7g8q is three (positions 17, 18, 19) and completes at its promotion token.
    assert np.flatnonzero(mask[0]).tolist() == [2, 4, 6, 8, 10, 12, 14, 16, 19, 21]
    assert np.flatnonzero(mask[1]).tolist() == [2, 4, 6]  # no PAD, BOS or from-square position
    record = record_moves(PROMOTION, len(PROMOTION) + 1)
    ex = board_examples(record["tokens"][None], record["boards"][None])
    assert ex.pos.tolist() == [2, 4, 6, 8, 10, 12, 14, 16, 19, 21]
    assert ex.labels[8, chess.G8] == 11  # a white queen on g8 after h7g8=Q, black to move: theirs


def test_frames_swap_colours_only_where_black_is_to_move():
    board = np.asarray([[1, 7, 0, -1], [6, 12, 0, -1]], np.int8)[:, :, None].repeat(16, 2).reshape(2, 64)
    np.testing.assert_array_equal(to_frame(board, np.asarray([0, 1]), "absolute"), board)
    rel = to_frame(board, np.asarray([0, 1]), "relative")
    np.testing.assert_array_equal(rel[0], board[0])
    np.testing.assert_array_equal(rel[1, ::16], [12, 6, 0, -1])
    with pytest.raises(ValueError, match="frame"):
        to_frame(board, np.asarray([0, 1]), "mine")


def random_games(n, plies=12, split="train"):
    return play_games(Players("random", 0.25, 0.05, plies, 0), split, range(n))


def test_baselines_are_computed_at_the_probed_positions():
    games = random_games(30)
    ex = board_examples(games["tokens"], games["boards"])
    done = (ex.pos + 1) // 2  # no promotions in 12 random plies of these games
    assert not np.isin(games["tokens"], np.arange(66, 70)).any()
    np.testing.assert_array_equal(ex.position.argmax(1), ex.pos)  # position one-hot of the example's own position
    np.testing.assert_array_equal(ex.moves.sum(1), 2 * done)  # a from and a to count per move read so far
    counts = ex.moves.reshape(-1, 4, 64)
    mine = counts[:, 0].sum(1)  # moves of the side to move: floor(done / 2)
    np.testing.assert_array_equal(mine, done // 2)
    np.testing.assert_array_equal(counts[:, 2].sum(1), done - done // 2)
    full = move_counts(games["tokens"].astype(np.int32))
    np.testing.assert_array_equal(full[ex.game, ex.pos], ex.moves)
    np.testing.assert_array_equal(ex.changed, games["boards"][ex.game, done] != START)


def test_activations_are_captured_at_the_example_positions():
    games = random_games(4)
    ex = board_examples(games["tokens"], games["boards"])
    model = toymi.Transformer(toymi.ModelConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, d_mlp=16, d_vocab=70,
                                                d_vocab_out=70, n_ctx=games["tokens"].shape[1]), jax.random.PRNGKey(0))
    acts = capture_examples(model, games["tokens"], ex, chunk=2)  # chunks split the games
    full = capture_site(model, games["tokens"].astype(np.int32), "resid_post")  # every position of every game
    np.testing.assert_allclose(acts, np.moveaxis(np.asarray(full)[ex.game, :, ex.pos], 0, 1), atol=1e-6)


@pytest.mark.slow
def test_a_probe_reads_a_board_written_into_the_activations():
    # The "activations" are the true board, one-hot per square (832 features): a linear probe must read it on
    # held-out games. Short games and many of them, so every (square, piece) pair is common and the 832-feature
    # probe does not overfit; noise features and the majority class read nothing on changed squares.
    train, test = (board_examples(**{k: g[k] for k in ("tokens", "boards")})
                   for g in (random_games(1000, plies=6), random_games(40, plies=6, split="test")))
    ex, is_train = concat_examples(train, test)
    assert is_train.sum() == len(train.pos) and ex.game[~is_train].min() == train.game.max() + 1
    board = np.eye(13, dtype=np.float32)[ex.labels].reshape(len(ex.pos), -1)
    noise = np.random.default_rng(0).normal(size=(len(ex.pos), 64)).astype(np.float32)
    out = fit_board_probes({"board": board[None], "noise": noise[None]}, ex, is_train, steps=200, lr=0.05,
                           batch_size=256, key=jax.random.PRNGKey(0))
    majority = majority_scores(ex, is_train)
    assert out["board"]["overall"][0] > 0.99 and out["board"]["non_empty"][0] > 0.99, out["board"]
    assert out["board"]["changed"][0] > 0.93, out["board"]  # measured 0.960
    for k in ("overall", "changed", "non_empty"):
        assert out["board"][k][0] > max(out["noise"][k][0], majority[k]) + 0.3, k
    assert out["noise"]["changed"][0] < 0.1 and majority["changed"] == 0.0


def test_fit_board_probes_refuses_misaligned_features():
    games = random_games(10)
    ex, is_train = concat_examples(*(board_examples(g["tokens"], g["boards"]) for g in (games, random_games(
        4, split="test"))))
    with pytest.raises(ValueError, match="must be"):
        fit_board_probes({"short": ex.moves[None, :-1]}, ex, is_train, steps=2)


@pytest.mark.slow
def test_benchmark_smoke_mode(tmp_path, monkeypatch):
    # in this process, as `python benchmarks/chess_probes.py --smoke --out DIR` runs it (the script is under test,
    # not the interpreter: a subprocess would only add its start-up and imports)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports its neighbour _bench
    monkeypatch.setattr(sys, "argv", ["chess_probes.py", "--smoke", "--out", str(tmp_path)])
    runpy.run_path(str(ROOT / "benchmarks" / "chess_probes.py"), run_name="__main__")
    report = json.loads((tmp_path / "chess_probes.json").read_text())
    assert report["benchmark"] == "chess_probes" and report["total_runtime_s"] > 0
    names = [row[0] for row in report["rows"]]
    assert names == ["resid_post 0", "resid_post 1", "random-init control, resid_post 0",
                     "random-init control, resid_post 1", "position one-hot", "bag of moves",
                     "majority class per square"]
    assert all(0 <= v <= 1 for row in report["rows"] for v in row[1:] if v is not None)
    assert report["counts"]["train_games"] == 48 and report["counts"]["test_games"] == 12
