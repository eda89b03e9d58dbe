"""Move-level tokens for chess games, and the role every token plays in a sequence.

The scheme (70 tokens, one vocabulary for input and output):

| id | token |
|---|---|
| 0 | `PAD` (after the game ends; never scored) |
| 1 | `BOS` (position 0 of every game) |
| 2 + s | square `s` in python-chess's numbering, `a1 = 0, b1 = 1, ..., h8 = 63` |
| 66, 67, 68, 69 | promotion to knight, bishop, rook, queen |

A move is its from-square, its to-square and, only when it promotes, the promotion piece: `1. e4 e5` is
`BOS e2 e4 e7 e5`. Castling is the king's move (`e1 g1`), as in UCI. Most moves are two tokens, so a game of
`max_plies` plies fits in `1 + 2 * max_plies` tokens; a game with promotions is cut to the whole moves that fit.

Roles (`token_roles`) say what each token is — `BOS`, a move's from-square, its to-square, its promotion piece, or
`PAD` — and which ply it belongs to. They are a pure function of the tokens, computed vectorised over games.
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np
from jaxtyping import Int

PAD, BOS = 0, 1
SQUARE0 = 2  # token of square a1; square s is SQUARE0 + s
PROMO0 = SQUARE0 + 64 - chess.KNIGHT  # promotion to piece type t (KNIGHT=2 .. QUEEN=5) is PROMO0 + t
D_VOCAB = SQUARE0 + 64 + 4

# Token roles.
ROLE_PAD, ROLE_BOS, ROLE_FROM, ROLE_TO, ROLE_PROMO = 0, 1, 2, 3, 4


def move_tokens(move: chess.Move) -> list[int]:
    """The 2 or 3 tokens of one move."""
    out = [SQUARE0 + move.from_square, SQUARE0 + move.to_square]
    if move.promotion is not None:
        if not chess.KNIGHT <= move.promotion <= chess.QUEEN:
            raise ValueError(f"cannot promote to {chess.piece_name(move.promotion)} in {move.uci()}")
        out.append(PROMO0 + move.promotion)
    return out


def encode_game(moves: Sequence[chess.Move | str]) -> Int[np.ndarray, " seq"]:
    """`BOS` followed by the tokens of each move (given as `chess.Move`s or UCI strings such as `"e7e8q"`).

    **Arguments:**

    - `moves`: the game's moves in order (legality is not checked here).

    **Returns:** an int32 array of `1 + 2 * len(moves) + number of promotions` tokens, no padding.
    """
    out = [BOS]
    for move in moves:
        out += move_tokens(chess.Move.from_uci(move) if isinstance(move, str) else move)
    return np.asarray(out, np.int32)


def decode(tokens: Sequence[int] | np.ndarray) -> list[chess.Move]:
    """The moves of one encoded game: the inverse of `encode_game`, ignoring trailing `PAD`s.

    **Arguments:**

    - `tokens`: `[seq]` tokens starting with `BOS`.

    **Returns:** the moves, in order. Raises `ValueError` if the tokens are not a sequence of whole moves.
    """
    tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
    if not tokens or tokens[0] != BOS:
        raise ValueError("an encoded game starts with BOS")
    while tokens and tokens[-1] == PAD:
        tokens.pop()
    moves, i = [], 1
    while i < len(tokens):
        if i + 1 >= len(tokens) or not (_is_square(tokens[i]) and _is_square(tokens[i + 1])):
            raise ValueError(f"expected a from-square and a to-square at positions {i}, {i + 1} of {tokens}")
        promotion = None
        if i + 2 < len(tokens) and PROMO0 + chess.KNIGHT <= tokens[i + 2] <= PROMO0 + chess.QUEEN:
            promotion = tokens[i + 2] - PROMO0
        moves.append(chess.Move(tokens[i] - SQUARE0, tokens[i + 1] - SQUARE0, promotion=promotion))
        i += 2 if promotion is None else 3
    return moves


def _is_square(token: int) -> bool:
    return SQUARE0 <= token < SQUARE0 + 64


def token_roles(tokens: Int[np.ndarray, "game seq"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each token of well-formed encoded games is.

    **Arguments:**

    - `tokens`: `[game, seq]` encoded games, `PAD`-padded.

    **Returns:** `(role, ply, plies_done)`, each `[game, seq]` int32:

    - `role`: `ROLE_BOS`, `ROLE_FROM`, `ROLE_TO`, `ROLE_PROMO` or `ROLE_PAD`;
    - `ply`: the index of the move a from/to/promotion token belongs to (-1 for `BOS` and `PAD`);
    - `plies_done`: how many moves are complete once tokens `0..pos` are read (a promoting move completes at its
      promotion token, every other move at its to-square).
    """
    tokens = np.asarray(tokens)
    is_square = (tokens >= SQUARE0) & (tokens < SQUARE0 + 64)
    is_promo = (tokens >= SQUARE0 + 64) & (tokens < D_VOCAB)
    n_squares = np.cumsum(is_square, axis=1)  # square tokens so far, this one included
    square_ply = (n_squares - 1) // 2  # squares come in (from, to) pairs, one pair per move
    is_from = is_square & ((n_squares - 1) % 2 == 0)
    is_to = is_square & ~is_from
    next_is_promo = np.zeros_like(is_promo)
    next_is_promo[:, :-1] = is_promo[:, 1:]
    completes = (is_to & ~next_is_promo) | is_promo
    role = np.select([tokens == BOS, is_from, is_to, is_promo], [ROLE_BOS, ROLE_FROM, ROLE_TO, ROLE_PROMO], ROLE_PAD)
    ply = np.where(is_square | is_promo, square_ply, -1)  # a promotion token follows its move's to-square
    return role.astype(np.int32), ply.astype(np.int32), np.cumsum(completes, axis=1).astype(np.int32)



def completed_move_mask(tokens: Int[np.ndarray, "game seq"]) -> np.ndarray:
    """`[game, seq]` bool: True where a move is complete once tokens `0..pos` are read (its to-square, or its
    promotion token)."""
    return np.diff(token_roles(tokens)[2], axis=1, prepend=0) > 0


def completed_moves(tokens: Int[np.ndarray, "game seq"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every move complete in `tokens`, in game then position order: `(game, position, to_square)`, each `[n]`.
    The position is where the move completes (its to-square, or its promotion token one later)."""
    tokens = np.asarray(tokens)
    games, positions = np.nonzero(completed_move_mask(tokens))
    last = tokens[games, positions]
    to_token = np.where(_is_square_array(last), last, tokens[games, np.maximum(positions - 1, 0)])
    return games, positions, (to_token - SQUARE0).astype(np.int32)


def _is_square_array(tokens: np.ndarray) -> np.ndarray:
    return (tokens >= SQUARE0) & (tokens < SQUARE0 + 64)

# ---- text -------------------------------------------------------------------------------------------------------

PROMO_TEXT = {PROMO0 + p: "=" + chess.piece_symbol(p) for p in range(chess.KNIGHT, chess.QUEEN + 1)}


def token_text(token: int) -> str:
    """One token as text: `<pad>`, `<bos>`, a square (`e2`), or a promotion (`=q`)."""
    if token == PAD:
        return "<pad>"
    if token == BOS:
        return "<bos>"
    if _is_square(token):
        return chess.square_name(token - SQUARE0)
    return PROMO_TEXT[token]


def game_text(tokens: Sequence[int] | np.ndarray, notation: str = "uci") -> str:
    """The moves of one encoded game (`BOS` first, trailing `PAD`s dropped): UCI `e2e4 e7e5`, or SAN from the
    starting position `1. e4 e5` (every move must then be legal). A move in progress at the end (only its
    from-square) is written as that square, in UCI only."""
    tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
    while tokens and tokens[-1] == PAD:
        tokens.pop()
    if not tokens or tokens[0] != BOS:
        raise ValueError("an encoded game starts with BOS")
    roles = token_roles(np.asarray([tokens]))[0][0]
    half = tokens[-1] if roles[-1] == ROLE_FROM else None
    moves = decode(tokens[:-1] if half is not None else tokens)
    if notation == "uci":
        words = [m.uci() for m in moves] + ([chess.square_name(half - SQUARE0)] if half is not None else [])
        return " ".join(words)
    if notation != "san":
        raise ValueError(f"notation must be 'uci' or 'san', got {notation!r}")
    if half is not None:
        raise ValueError("a move in progress (a lone from-square) has no SAN; use notation='uci'")
    board = chess.Board()
    for i, move in enumerate(moves):
        if not board.is_legal(move):
            raise ValueError(f"move {i} ({move.uci()}) is illegal in {board.fen()}: SAN needs legal moves")
        board.push(move)
    return chess.Board().variation_san(moves)


def parse_game(text: str, notation: str = "uci") -> Int[np.ndarray, " seq"]:
    """The tokens of `game_text`'s output: `BOS` and the moves (a lone trailing square, in UCI, is a move in
    progress). A word that is not a move is a one-line `ValueError` naming it."""
    words = text.split()
    if notation == "san":
        board, moves = chess.Board(), []
        for word in words:
            if word.rstrip(".").isdigit():  # move numbers "1." and "1..."
                continue
            try:
                move = board.parse_san(word)
            except ValueError:
                raise ValueError(f"chess: {word!r} in {text!r} is not a legal move in SAN at {board.fen()}") from None
            moves.append(move)
            board.push(move)
        return encode_game(moves)
    if notation != "uci":
        raise ValueError(f"notation must be 'uci' or 'san', got {notation!r}")
    out = [BOS]
    for i, word in enumerate(words):
        if i == len(words) - 1 and word in chess.SQUARE_NAMES:
            out.append(SQUARE0 + chess.parse_square(word))
            continue
        try:
            move = chess.Move.from_uci(word)
            if not move:  # the null move 0000
                raise ValueError
            out += move_tokens(move)
        except ValueError:
            raise ValueError(f"chess: {word!r} in {text!r} is not a UCI move (e2e4, e7e8q)") from None
    return np.asarray(out, np.int32)
