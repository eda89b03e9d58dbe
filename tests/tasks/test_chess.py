import chess
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
import toymi.tasks.chess.generate as generate_module
from toymi.tasks import make_task
from toymi.tasks.chess import ChessMoves, decode, encode_game, legal_move_rate, position_labels
from toymi.tasks.chess.cache import cache_path, load_or_generate
from toymi.tasks.chess.generate import Players, generate, record_moves
from toymi.tasks.chess.labels import NEXT_FROM, next_move_facts
from toymi.tasks.chess.players import heuristic_move
from toymi.tasks.chess.tokens import BOS, PAD, SQUARE0, token_roles
from toymi.train import metrics_log

# 1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. O-O, and a game ending in a capturing promotion, 5. hxg8=Q.
RUY_LOPEZ = ["e2e4", "e7e5", "g1f3", "b8c6", "f1b5", "a7a6", "e1g1"]
PROMOTION = ["h2h4", "g7g5", "h4g5", "a7a6", "g5g6", "a6a5", "g6h7", "a5a4", "h7g8q"]
RANDOM, HEURISTIC = Players("random", 0.25, 0.05, 40, 0), Players("heuristic", 0.25, 0.05, 40, 0)


def sq(name: str) -> int:
    return SQUARE0 + chess.parse_square(name)


def replay(tokens) -> list[chess.Board]:
    """The board after 0, 1, 2, ... moves of an encoded game, checking every move is legal."""
    board, boards = chess.Board(), [chess.Board()]
    for move in decode(tokens):
        assert board.is_legal(move), f"{move} is illegal in {board.fen()}"
        board.push(move)
        boards.append(board.copy())
    return boards


def assert_labels_match(board_labels, side_labels, tokens):
    """Every square at every position against python-chess's board after the moves completed there."""
    _, _, done = token_roles(np.asarray(tokens)[None])
    boards = replay(tokens)
    for pos in range(len(tokens)):
        if tokens[pos] == PAD:
            assert (board_labels[pos] == -1).all() and side_labels[pos] == -1
            continue
        board = boards[done[0, pos]]
        assert side_labels[pos] == (0 if board.turn == chess.WHITE else 1)
        for square in chess.SQUARES:
            piece = board.piece_at(square)
            want = 0 if piece is None else piece.piece_type + 6 * (piece.color == chess.BLACK)
            assert board_labels[pos, square] == want, (pos, chess.square_name(square))


def small_task(tmp_path, **settings) -> ChessMoves:
    defaults = {"n_games": 60, "n_test_games": 20, "max_plies": 12, "cache_dir": str(tmp_path / "cache")}
    return ChessMoves(**{**defaults, **settings})


# ---- tokens -------------------------------------------------------------------------------------------------------


def test_tokens_of_a_known_game_and_round_trip():
    tokens = encode_game(RUY_LOPEZ)
    assert list(tokens[:5]) == [BOS, sq("e2"), sq("e4"), sq("e7"), sq("e5")]
    assert list(tokens[-2:]) == [sq("e1"), sq("g1")]  # castling is the king's move
    assert len(tokens) == 1 + 2 * len(RUY_LOPEZ)
    assert [m.uci() for m in decode(tokens)] == RUY_LOPEZ
    promo = encode_game(PROMOTION)
    assert len(promo) == 2 + 2 * len(PROMOTION) and promo[-1] == 64 + chess.QUEEN
    padded = np.concatenate([promo, np.full(5, PAD)])
    assert [m.uci() for m in decode(padded)] == PROMOTION
    for piece in "nbrq":  # every promotion piece round-trips
        assert decode(encode_game([f"a7a8{piece}"]))[0].promotion == chess.Piece.from_symbol(piece).piece_type


def test_malformed_tokens_are_rejected():
    with pytest.raises(ValueError, match="starts with BOS"):
        decode([sq("e2"), sq("e4")])
    with pytest.raises(ValueError, match="expected a from-square and a to-square"):
        decode([BOS, sq("e2")])


def test_token_roles_and_plies_done():
    tokens = np.concatenate([encode_game(PROMOTION[-3:]), [PAD]])[None]  # BOS f t f t f t q PAD
    role, ply, done = token_roles(tokens)
    assert list(role[0]) == [1, 2, 3, 2, 3, 2, 3, 4, 0]
    assert list(ply[0]) == [-1, 0, 0, 1, 1, 2, 2, 2, -1]
    assert list(done[0]) == [0, 0, 1, 1, 2, 2, 2, 3, 3]  # the promotion completes at its piece token


# ---- board labels -------------------------------------------------------------------------------------------------


def test_labels_of_a_known_game_square_by_square():
    game = {k: v[None] for k, v in record_moves(RUY_LOPEZ, max_plies=10).items()}
    board, side = position_labels(game["tokens"], game["boards"])
    tokens = game["tokens"][0]
    assert board.shape == (1, 21, 64) and side.shape == (1, 21)
    assert_labels_match(board[0], side[0], tokens)
    # spot checks read off the moves themselves
    e2, e4, f3, g1 = (chess.parse_square(s) for s in ("e2", "e4", "f3", "g1"))
    assert board[0, 1, e2] == 1 and board[0, 1, e4] == 0  # at e4's from-square, 1. e4 is not played yet
    assert board[0, 2, e2] == 0 and board[0, 2, e4] == 1 and side[0, 2] == 1  # after 1. e4: black to move
    assert board[0, 6, f3] == 2 and board[0, 6, g1] == 0  # after 2. Nf3
    assert board[0, 14, g1] == 6 and board[0, 14, chess.F1] == 4  # after 4. O-O: king g1, rook f1
    assert (board[0, 15:] == -1).all() and (side[0, 15:] == -1).all()  # PAD


@pytest.mark.slow
def test_labels_of_a_promotion_and_of_generated_games(tmp_path):
    game = {k: v[None] for k, v in record_moves(PROMOTION, max_plies=12).items()}
    board, side = position_labels(game["tokens"], game["boards"])
    assert_labels_match(board[0], side[0], game["tokens"][0])
    g8 = chess.G8
    assert board[0, 17, g8] == 8 and board[0, 18, g8] == 8 and board[0, 19, g8] == 5  # knight until the queen token
    task = small_task(tmp_path, player=0.5, max_plies=20)
    truth = task.facts()
    assert truth["board"].shape == (20, 41, 64) and truth["heuristic"].any() and not truth["heuristic"].all()
    for g in range(5):
        assert_labels_match(truth["board"][g], truth["side_to_move"][g], truth["tokens"][g])


# ---- players and generation ---------------------------------------------------------------------------------------


def test_same_seed_same_games_and_any_prefix_or_worker_count(monkeypatch):
    a, b = generate(RANDOM, "train", 12, workers=1), generate(RANDOM, "train", 12, workers=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other_seed = generate(Players("random", 0.25, 0.05, 40, 1), "train", 12, workers=1)
    assert not np.array_equal(a["tokens"], other_seed["tokens"])
    assert not np.array_equal(a["tokens"], generate(RANDOM, "test", 12, workers=1)["tokens"])
    longer = generate(RANDOM, "train", 20, workers=1)
    assert all(np.array_equal(a[k], longer[k][:12]) for k in a)
    monkeypatch.setattr(generate_module, "MIN_GAMES_PER_WORKER", 1)  # let 20 games use 3 worker processes
    parallel = generate(RANDOM, "train", 20, workers=3)
    assert all(np.array_equal(longer[k], parallel[k]) for k in longer)


def test_cache_hit_returns_identical_arrays_without_generating(tmp_path, monkeypatch):
    first = load_or_generate(RANDOM, "train", 10, tmp_path, workers=1)
    path = cache_path(tmp_path, RANDOM, "train", 10)
    assert path.exists() and sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left

    def no_generation(*args, **kwargs):
        raise AssertionError("generated despite the cache")

    import toymi.tasks.chess.cache as cache_module

    monkeypatch.setattr(cache_module, "generate", no_generation)
    again = load_or_generate(RANDOM, "train", 10, tmp_path)
    assert all(np.array_equal(first[k], again[k]) and first[k].dtype == again[k].dtype for k in first)
    path.write_bytes(b"not an npz")  # an unreadable entry is regenerated, not trusted
    monkeypatch.undo()
    assert np.array_equal(load_or_generate(RANDOM, "train", 10, tmp_path, workers=1)["tokens"], first["tokens"])


def safe_capture(board: chess.Board, move: chess.Move) -> bool:
    """A capture after which the capturing piece cannot be taken back."""
    if not board.is_capture(move):
        return False
    board.push(move)
    safe = not board.is_attacked_by(board.turn, move.to_square)
    board.pop()
    return safe


def test_heuristic_plays_legal_moves_and_grabs_material_unlike_random_play():
    taken = {}
    for players in (RANDOM, HEURISTIC):
        games = generate(players, "train", 30, workers=1)
        assert games["heuristic"].all() == (players is HEURISTIC) and games["heuristic"].any() == (players is HEURISTIC)
        could = took = 0  # moves with a safe capture on offer, and how many of them captured
        for tokens in games["tokens"]:
            boards = replay(tokens)  # asserts every move is legal
            for board, move in zip(boards, decode(tokens)):
                if any(safe_capture(board, m) for m in board.legal_moves):
                    could += 1
                    took += board.is_capture(move)
        taken[players.player] = took / could
    assert taken["random"] < 0.3 and taken["heuristic"] > 0.5, taken  # measured: 0.17 and 0.64


def test_heuristic_takes_the_free_queen_and_keeps_its_own():
    import random

    # White to move: Rxd5 wins an undefended queen; Qh5 or Qf7 would hang the queen to the g6 pawn or the king.
    board = chess.Board("4k3/8/6p1/3q4/8/8/8/3RK2Q w - - 0 1")
    rng = random.Random(0)
    picks = {heuristic_move(board, list(board.legal_moves), rng, temperature=0.0, epsilon=0.0).uci()
             for _ in range(20)}
    assert picks == {"d1d5"}  # Rxd5 (9 - 0.5) beats Qxd5 (9 - 0.9): the least valuable attacker
    board = chess.Board("4k3/8/6p1/8/8/8/8/4K2Q w - - 0 1")
    picks = [heuristic_move(board, list(board.legal_moves), rng, temperature=0.25, epsilon=0.0).uci()
             for _ in range(200)]
    assert "h1h5" not in picks and "h1f7" not in picks and len(set(picks)) > 5


# ---- the task -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_task_batches_dims_and_registration(tmp_path):
    task = make_task("chess", n_games=60, n_test_games=20, max_plies=12, batch_size=8,
                     cache_dir=str(tmp_path / "cache"))
    assert task.model_dims() == {"d_vocab": 70, "d_vocab_out": 70, "n_ctx": 25}
    batch = task.train_batch(jax.random.PRNGKey(0))
    assert batch.tokens.shape == (8, 25) and batch.tokens.dtype == jnp.int32
    assert (batch.tokens[:, 0] == BOS).all()
    np.testing.assert_array_equal(batch.targets[:, :-1], batch.tokens[:, 1:])
    np.testing.assert_array_equal(batch.loss_mask, batch.targets != PAD)
    assert set(task.eval_batches()) == {"train", "test"}
    assert not np.array_equal(task.test.tokens, task.train_subset.tokens)


def test_uniform_legal_loss_is_the_log_number_of_legal_moves(tmp_path):
    task = small_task(tmp_path)
    games = task.games("test")
    facts = next_move_facts(games["tokens"].astype(np.int32), games)
    per_game = -facts["uniform_legal_logp"].sum(1)  # one factor per token: together, 1 / n_legal per move
    want = np.log(np.maximum(games["n_legal"], 1)).sum(1)
    np.testing.assert_allclose(per_game, want, rtol=1e-5)
    # the legal from-squares before each move are the squares of the pieces python-chess can move
    g, pos = np.argwhere(facts["next_kind"] == NEXT_FROM)[3]
    board = replay(games["tokens"][g])[token_roles(games["tokens"][g:g + 1])[2][0, pos]]
    assert set(np.flatnonzero(facts["legal_next"][g, pos])) == {m.from_square for m in board.legal_moves}


@pytest.mark.slow
def test_in_jit_legal_start_rate_matches_the_host_check_and_an_oracle_is_always_legal(tmp_path):
    task = small_task(tmp_path)
    config = toymi.ModelConfig(**task.model_dims(), n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    host = legal_move_rate(model, task, n_games=task.n_test_games, batch_size=16)
    in_jit = task.evaluate(model, task.test)
    assert host["n_moves"] == int((np.asarray(task.test.next_kind) == NEXT_FROM).sum())
    np.testing.assert_allclose(host["legal_start_rate"], in_jit["legal_start_rate"], rtol=1e-6)
    assert host["legal_move_rate"] < 0.1

    class Oracle(toymi.Transformer):
        """Puts all its mass on the token that actually comes next: every greedy move is the game's move."""

        def forward(self, tokens, *args, **kwargs):
            nxt = jnp.concatenate([tokens[1:], jnp.array([PAD])])
            return jax.nn.one_hot(nxt, 70) * 10.0, None

    oracle = Oracle(config, jax.random.PRNGKey(0))
    assert legal_move_rate(oracle, task, n_games=10)["legal_move_rate"] == 1.0
    assert task.evaluate(oracle, task.test)["legal_start_rate"] == 1.0


@pytest.mark.slow
def test_a_tiny_model_learns_the_rules_beyond_chance(tiny_chess_run):
    # tiny_chess_run (tests/conftest.py): 1 layer, d_model 32, 100 steps of 32 of 400 games (<= 10 plies), lr 1e-2
    m = metrics_log.as_arrays(metrics_log.read(tiny_chess_run / "metrics.jsonl"))
    # measured after 100 steps: loss 4.32 -> 2.21 (the best possible is ~1.57), legal from-squares 26% -> 86%,
    # legal to-squares 3% -> 85%
    assert m["test_loss"][-1] < 0.7 * np.log(70)  # uniform over the vocabulary: log 70
    assert m["test_legal_start_rate"][-1] > 0.6 > 2 * m["test_legal_start_rate"][0]
    assert m["test_legal_to_rate"][-1] > 0.4 > 4 * m["test_legal_to_rate"][0]


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"n_games must be a positive integer, got 0.*player must be one of"):
        ChessMoves(n_games=0, player="stockfish", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\], got 2.*seed must be an integer"):
        ChessMoves(epsilon=2, seed=1.5, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="max_plies must be a positive integer, got True"):
        ChessMoves(max_plies=True, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="player must be .* got 1.5"):
        ChessMoves(player=1.5, cache_dir=str(tmp_path))
    with pytest.raises(KeyError, match=r"unknown settings \['n_plies'\]"):
        make_task("chess", n_plies=10)
    assert not any(tmp_path.iterdir())  # nothing was generated for an invalid task
