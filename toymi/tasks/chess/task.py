"""The chess-moves task: next-token prediction over move-tokenised games of random or heuristic play.

Karvonen (2024) trained 8-layer GPTs on character-level PGN and read the board state off their residual stream with
linear probes at ~99% accuracy. This is the same experiment at toymi's scale: moves as 2-3 tokens (`tokens.py`),
games generated locally with python-chess (`generate.py`, cached by `cache.py`), and the board at every position
stored as ground truth for probes (`labels.py`).

Metrics, in-jit (logged every eval, on a fixed `train` subset and the `test` games):

- `loss`, `accuracy`: next-token cross-entropy and top-1 accuracy over every move token (not `PAD`);
- `uniform_legal_loss`: the loss of a player who picks uniformly among the legal moves. For random games it is the
  best loss possible; a model that knows the rules approaches it, and on heuristic games can beat it;
- `legal_start_rate`: at positions where a move starts, the fraction whose top prediction is the from-square of
  some legal move — a cheap proxy, computed from masks stored at generation time;
- `legal_to_rate`: at a move's from-square (the true one, teacher-forced), the fraction whose top prediction is a
  legal destination of that piece.

The full check of whole moves against a real board runs on the host: `legality.legal_move_rate`.
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from toymi.tasks.base import Batch, Task
from toymi.tasks.chess.cache import load_or_generate
from toymi.tasks.chess.generate import Players
from toymi.tasks.chess.labels import NEXT_FROM, NEXT_TO, PIECE_CLASSES, next_move_facts, position_labels
from toymi.tasks.chess.tokens import (BOS, D_VOCAB, PAD, PROMO0, ROLE_FROM, SQUARE0, game_text, parse_game,
                                      token_roles, token_text)
from toymi.tasks.render import as_tokens, one_sequence
from toymi.validate import integer, is_number, number, optional, problems, require

PLAYERS = ("random", "heuristic")


class ChessBatch(Batch):
    """A `Batch` with what the legal-move metrics need at each position (`labels.next_move_facts`)."""

    next_kind: Int[Array, "batch pos"]
    legal_next: Bool[Array, "batch pos 64"]
    uniform_legal_logp: Float[Array, "batch pos"]


def shifted(tokens: Int[Array, "batch seq"]) -> tuple[Int[Array, "batch seq"], Float[Array, "batch seq"]]:
    """Next-token targets (`PAD` after the last position) and the loss mask (every target but `PAD`)."""
    targets = jnp.concatenate([tokens[:, 1:], jnp.full_like(tokens[:, :1], PAD)], axis=1)
    return targets, (targets != PAD).astype(jnp.float32)


class ChessMoves(Task):
    """Predict the next move token of chess games played by random or heuristic players.

    **Arguments:**

    - `n_games`: training games (sampled with replacement, `batch_size` per step).
    - `n_test_games`: held-out games (a different random stream); also the size of the logged `train` subset.
    - `max_plies`: plies per game at most; sequences are `1 + 2 * max_plies` tokens (the model's `n_ctx`).
    - `player`: `"random"`, `"heuristic"`, or the fraction of games (0 to 1) the heuristic plays.
    - `temperature`, `epsilon`: the heuristic's softmax temperature (pawn units) and random-move probability.
    - `seed`: seed of the games.
    - `batch_size`: games per training step.
    - `cache_dir`: where generated games are cached; default `~/.cache/toymi/chess` (see `cache.py`).
    """

    padding_token: ClassVar[int | None] = PAD  # after a game ends: `show` skips these positions

    n_games: int = eqx.field(static=True)
    n_test_games: int = eqx.field(static=True)
    max_plies: int = eqx.field(static=True)
    player: str | float = eqx.field(static=True)
    temperature: float = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    cache_dir: str | None = eqx.field(static=True)
    train_tokens: Int[Array, "game seq"]
    train_subset: ChessBatch
    test: ChessBatch

    def __init__(self, n_games: int = 20_000, n_test_games: int = 500, max_plies: int = 40,
                 player: str | float = "random", temperature: float = 0.25, epsilon: float = 0.05, seed: int = 0,
                 batch_size: int = 64, cache_dir: str | None = None):
        _validate(n_games=n_games, n_test_games=n_test_games, max_plies=max_plies, player=player,
                  temperature=temperature, epsilon=epsilon, seed=seed, batch_size=batch_size, cache_dir=cache_dir)
        self.n_games, self.n_test_games, self.max_plies = n_games, n_test_games, max_plies
        self.player = player if isinstance(player, str) else float(player)
        self.temperature, self.epsilon = float(temperature), float(epsilon)
        self.seed, self.batch_size, self.cache_dir = seed, batch_size, cache_dir
        train = self.games("train")
        self.train_tokens = jnp.asarray(train["tokens"])  # uint8: a quarter of int32's device memory
        n_subset = min(n_games, n_test_games)
        self.train_subset = _eval_batch({k: v[:n_subset] for k, v in train.items()})
        self.test = _eval_batch(self.games("test"))

    @property
    def players(self) -> Players:
        return Players(self.player, self.temperature, self.epsilon, self.max_plies, self.seed)

    def games(self, split: str, workers: int | None = None) -> dict[str, np.ndarray]:
        """The per-game records of `split` (`generate.play_game`), from the cache or generated."""
        n = {"train": self.n_games, "test": self.n_test_games}[split]
        return load_or_generate(self.players, split, n, self.cache_dir, workers)

    def train_batch(self, key: PRNGKeyArray) -> Batch:
        rows = jax.random.randint(key, (self.batch_size,), 0, self.n_games)
        tokens = self.train_tokens[rows].astype(jnp.int32)
        return Batch(tokens, *shifted(tokens))

    def eval_batches(self) -> dict[str, Batch]:
        return {"train": self.train_subset, "test": self.test}

    def model_dims(self) -> dict[str, int]:
        return {"d_vocab": D_VOCAB, "d_vocab_out": D_VOCAB, "n_ctx": self.players.seq_len}

    @classmethod
    def dims_from_settings(cls, kind: str, **settings) -> dict[str, int]:
        # Building the task generates (or loads) every game: a spec check must not.
        bound = inspect.signature(cls.__init__).bind(None, **settings)
        bound.apply_defaults()
        s = {k: v for k, v in bound.arguments.items() if k != "self"}
        _validate(**s)
        seq_len = Players(s["player"], s["temperature"], s["epsilon"], s["max_plies"], s["seed"]).seq_len
        return {"d_vocab": D_VOCAB, "d_vocab_out": D_VOCAB, "n_ctx": seq_len}

    def metrics(self, logits: Float[Array, "batch pos vocab"], batch: Batch) -> dict[str, Array]:
        out = super().metrics(logits, batch)
        if isinstance(batch, ChessBatch):
            square = logits.argmax(-1) - SQUARE0
            on_board = (square >= 0) & (square < 64)
            legal = on_board & jnp.take_along_axis(batch.legal_next, jnp.clip(square, 0, 63)[..., None], -1)[..., 0]
            for name, kind in (("legal_start_rate", NEXT_FROM), ("legal_to_rate", NEXT_TO)):
                where = batch.next_kind == kind
                out[name] = (legal & where).sum() / jnp.maximum(where.sum(), 1)
            out["uniform_legal_loss"] = -(batch.uniform_legal_logp * batch.loss_mask).sum() / batch.loss_mask.sum()
        return out

    def render_tokens(self, tokens) -> list[str]:
        """`<bos>`, squares (`e2`), promotions (`=q`) and `<pad>`, one per token."""
        return [token_text(int(t)) for t in one_sequence(tokens, D_VOCAB, "chess")]

    def to_string(self, tokens, notation: str = "uci") -> str:
        """The game's moves in UCI (`e2e4 e7e5`) or SAN (`notation="san"`: `1. e4 e5`, legal moves only)."""
        return game_text(one_sequence(tokens, D_VOCAB, "chess"), notation)

    def from_string(self, text: str, notation: str = "uci") -> Array:
        """`BOS` and the tokens of the moves in `text` (UCI, or SAN with `notation="san"`)."""
        return as_tokens(parse_game(text, notation))

    def generation_limit(self, prompt) -> int:
        """One move (2 tokens, 3 with a promotion) after a prompt of whole moves, within `n_ctx`."""
        prompt_len = prompt.shape[-1]
        if (prompt[:, 0] != BOS).any() or (token_roles(prompt)[0][:, -1] == ROLE_FROM).any():
            raise ValueError("chess: generate writes one move after BOS and whole moves; this prompt ends inside a "
                             "move or lacks BOS")
        room = self.model_dims()["n_ctx"] + 1 - prompt_len  # the last prediction is read at position n_ctx - 1
        if room < 2:
            raise ValueError(f"chess: a prompt of {prompt_len} tokens leaves no room for a move (n_ctx = "
                             f"{self.model_dims()['n_ctx']})")
        return min(3, room)

    def generation_step(self, tokens, pos, token, step):
        """A move: a from-square, a to-square and, only when the to-square is on the first or last rank, one more
        token, kept if it is a promotion. A token that is not a square ends the move (kept, so it can be seen)."""
        del tokens, pos
        square = token - SQUARE0
        is_square = (square >= 0) & (square < 64)
        last_rank = is_square & ((square // 8 == 0) | (square // 8 == 7))
        is_promo = (token >= PROMO0 + 2) & (token < D_VOCAB)
        keep = jnp.where(step < 2, True, is_promo)
        stop = jnp.where(step == 0, ~is_square, jnp.where(step == 1, ~last_rank, True))
        return keep, stop

    def input_map(self, n_inputs: int = 512):
        """Up to `n_inputs` completed moves of the test games (read where each move completes), on the board: the
        cell is the square the move went to, rank 8 in the top row and file a in the left column."""
        from toymi.tasks.chess.tokens import completed_moves
        from toymi.tasks.input_map import InputMap

        tokens = np.asarray(self.test.tokens)
        games, positions, square = (x[:n_inputs] for x in completed_moves(tokens))
        cells = (7 - square // 8) * 8 + square % 8
        return InputMap(tokens[games], positions, cells, (8, 8), ("rank (8 at the top)", "file (a at the left)"))

    def facts(self, split: str = "test") -> dict:
        """Board state at every token position of `split`'s games, for probes (see `labels.py`).

        **Returns:** `board [game, pos, 64]` (piece classes, `piece_classes` names them), `side_to_move
        [game, pos]` (0 white, 1 black), both int8 and -1 at `PAD`; the games' `tokens [game, pos]` and
        `heuristic [game]` (whether the heuristic played each game).
        """
        games = self.games(split)
        board, side = position_labels(games["tokens"], games["boards"])
        return {"board": board, "side_to_move": side, "tokens": games["tokens"].astype(np.int32),
                "heuristic": games["heuristic"], "piece_classes": PIECE_CLASSES}


def _eval_batch(games: dict[str, np.ndarray]) -> ChessBatch:
    tokens = np.asarray(games["tokens"], np.int32)
    facts = next_move_facts(tokens, games)
    tokens = jnp.asarray(tokens)
    return ChessBatch(tokens, *shifted(tokens), next_kind=jnp.asarray(facts["next_kind"]),
                      legal_next=jnp.asarray(facts["legal_next"]),
                      uniform_legal_logp=jnp.asarray(facts["uniform_legal_logp"]))


def _player(player) -> str | None:
    return None if player in PLAYERS or (is_number(player) and 0 <= player <= 1) else \
        f"one of {PLAYERS} or a fraction of heuristic games in [0, 1]"


_CHECKS = {"n_games": integer(1), "n_test_games": integer(1), "max_plies": integer(1), "batch_size": integer(1),
           "player": _player, "temperature": number(0), "epsilon": number(0, 1), "seed": integer(),
           "cache_dir": optional(lambda v: None if isinstance(v, str) else "a path string")}


def _validate(**s) -> None:
    require("chess task", problems(s, _CHECKS))
