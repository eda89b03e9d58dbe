"""Chess board probes done right: completed-move positions, mine/theirs classes, and baselines on the same positions.

Pooling every token position into one board probe, with absolute white/black classes, scored by overall accuracy,
hides whatever board a small model has: most squares never change, so the majority class already scores ~71%, and
the random-init control matches the model (issue 20). Here:

- **Positions**: only where a move is complete (its to-square, or its promotion token), the positions where the next
  token starts a move on exactly the labelled board (`completed_move_mask`).
- **Classes**: `RELATIVE_CLASSES`, the 13 piece classes with colours relative to the side to move (`frame=
  "relative"`: 1-6 my pawn..king, 7-12 theirs), or python-chess's absolute white/black (`frame="absolute"`).
- **Scores**: overall accuracy, on *changed* squares (content differs from the start position) and on *non-empty*
  squares (`board_probe_scores`).
- **Baselines**, fitted and scored on the same examples: the random-init model (control), a probe on a one-hot of
  the position index, a probe on a bag of moves (per square, how often it was a from- or a to-square of my or
  their moves so far), and each square's majority class.

`board_examples` turns games into examples with all of that; `fit_board_probes` fits any named feature stacks
(`[layer, example, d]`) on the train examples and scores them on the rest; `chess_board_probes` does both for a model.
"""

from __future__ import annotations

import dataclasses

import chess
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from toymi.dissect.probes import ProbeResult, capture_site, random_like, train_probes
from toymi.tasks.chess.labels import PIECE_CLASSES, board_classes, position_labels
from toymi.tasks.chess.tokens import ROLE_FROM, ROLE_TO, SQUARE0, completed_move_mask, token_roles

RELATIVE_CLASSES = ("empty", *(f"my {p}" for p in "PNBRQK"), *(f"their {p}" for p in "PNBRQK"))
FRAMES = ("relative", "absolute")
START = board_classes(chess.Board())  # [64] absolute classes of the start position
_SWAP = np.asarray([0, *range(7, 13), *range(1, 7)], np.int8)  # white <-> black piece classes
N_MOVE_FEATURES = 4 * 64  # (mine, theirs) x (from, to) x square


@dataclasses.dataclass(frozen=True)
class BoardExamples:
    """Probe examples at completed-move positions, one row per (game, position).

    - `game`, `pos`: where each example comes from; `labels [n, 64]` piece classes in `frame`;
    - `changed [n, 64]`: the square's content differs from the start position (colour-absolute comparison);
    - `position [n, seq]`: one-hot of the token position; `moves [n, 256]`: the bag-of-moves counts
      (`move_counts`), both float32 features for the baselines.
    """

    game: Int[np.ndarray, " n"]
    pos: Int[np.ndarray, " n"]
    labels: Int[np.ndarray, "n 64"]
    changed: Bool[np.ndarray, "n 64"]
    position: Float[np.ndarray, "n seq"]
    moves: Float[np.ndarray, "n 256"]
    frame: str


def to_frame(board: Int[np.ndarray, "*shape 64"], side: Int[np.ndarray, "*shape"], frame: str) -> np.ndarray:
    """Absolute piece classes as `frame` has them: unchanged, or (`"relative"`) black's and white's swapped where
    black is to move, so 1-6 are always the side to move's pieces. Unlabelled (-1) entries stay -1."""
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    board = np.asarray(board)
    if frame == "absolute":
        return board
    flip = (np.asarray(side) == 1)[..., None] & (board >= 0)
    return np.where(flip, _SWAP[np.maximum(board, 0)], board).astype(board.dtype)


def move_counts(tokens: Int[np.ndarray, "game seq"], frame: str = "relative") -> Float[np.ndarray, "game seq 256"]:
    """The bag-of-moves baseline's features at every position: per square, how many of the moves read so far left
    it or arrived on it, split by who moved — `[mine from, mine to, theirs from, theirs to] x 64` relative to the
    side to move after `0..pos`, or `[white from, white to, black from, black to] x 64` for `frame="absolute"`."""
    role, ply, done = token_roles(tokens)
    square = (role == ROLE_FROM) | (role == ROLE_TO)
    channel = 2 * (ply % 2) + (role == ROLE_TO)  # 0/1 white from/to, 2/3 black from/to
    events = np.zeros((*tokens.shape, 4, 64), np.float32)
    g, p = np.nonzero(square)
    events[g, p, channel[g, p], np.asarray(tokens)[g, p] - SQUARE0] = 1
    counts = np.cumsum(events, axis=1)
    if frame == "relative":
        black_to_move = (done % 2 == 1)[..., None, None]
        counts = np.where(black_to_move, counts[..., [2, 3, 0, 1], :], counts)
    elif frame != "absolute":
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    return counts.reshape(*tokens.shape, N_MOVE_FEATURES)


def board_examples(tokens: Int[np.ndarray, "game seq"], boards: Int[np.ndarray, "game ply 64"],
                   frame: str = "relative") -> BoardExamples:
    """Every completed-move position of the games, with labels in `frame` and the baselines' features.

    **Arguments:** `tokens [game, seq]` and the per-ply `boards [game, max_plies + 1, 64]` of `generate`'s records
    (`task.games(split)`); `frame`: `"relative"` (mine/theirs) or `"absolute"` (white/black).
    """
    tokens = np.asarray(tokens, np.int32)
    board, side = position_labels(tokens, np.asarray(boards))
    game, pos = np.nonzero(completed_move_mask(tokens))
    absolute = board[game, pos]
    return BoardExamples(
        game=game, pos=pos, labels=to_frame(absolute, side[game, pos], frame), changed=absolute != START,
        position=np.eye(tokens.shape[1], dtype=np.float32)[pos], moves=move_counts(tokens, frame)[game, pos],
        frame=frame)


def concat_examples(train: BoardExamples, test: BoardExamples) -> tuple[BoardExamples, np.ndarray]:
    """Train and test examples as one set (test games' indices offset past the train games'), and `is_train`."""
    if train.frame != test.frame or train.position.shape[1] != test.position.shape[1]:
        raise ValueError("train and test examples differ in frame or sequence length")
    offset = train.game.max() + 1 if len(train.game) else 0
    both = {f.name: np.concatenate([getattr(train, f.name), getattr(test, f.name) + (offset if f.name == "game"
                                                                                      else 0)])
            for f in dataclasses.fields(BoardExamples) if f.name != "frame"}
    is_train = np.arange(len(both["game"])) < len(train.game)
    return BoardExamples(**both, frame=train.frame), is_train


def board_probe_scores(result: ProbeResult, x_test: Float[Array, "layer n d"], labels: Int[np.ndarray, "n 64"],
                       changed: Bool[np.ndarray, "n 64"]) -> dict[str, np.ndarray]:
    """Per-layer test accuracy of fitted probes overall, on changed squares and on non-empty squares."""
    hits = []
    for layer in range(x_test.shape[0]):  # one layer at a time: [n, 64, 13] logits per layer stay small
        logits = jnp.einsum("nd,dtc->ntc", x_test[layer], result.weights[layer]) + result.bias[layer]
        hits.append(np.asarray(logits.argmax(-1)) == labels)
    hits = np.stack(hits)
    masks = {"overall": np.ones_like(changed), "changed": changed, "non_empty": labels != 0}
    return {name: (hits & m).sum((1, 2)) / max(m.sum(), 1) for name, m in masks.items()}


def majority_scores(examples: BoardExamples, is_train: np.ndarray) -> dict[str, float]:
    """Each square's most common train class, predicted everywhere, scored like `board_probe_scores`."""
    train, test = examples.labels[is_train], examples.labels[~is_train]
    majority = np.asarray([np.bincount(col, minlength=13).argmax() for col in train.T])
    hits = test == majority
    masks = {"overall": np.ones_like(hits), "changed": examples.changed[~is_train], "non_empty": test != 0}
    return {name: float((hits & m).sum() / max(m.sum(), 1)) for name, m in masks.items()}


def fit_board_probes(features: dict[str, Float[Array, "layer n d"]], examples: BoardExamples, is_train: np.ndarray,
                     **fit_kwargs) -> dict[str, dict[str, np.ndarray]]:
    """Fit a 64-square probe on every layer of every named feature stack (stacks of equal width in one vmapped
    fit) with the train examples, and score each on the test examples.

    **Returns:** per name, `{"overall", "changed", "non_empty", "train"}` arrays over the stack's layers, plus
    `"result"`, the `ProbeResult`.
    """
    out = {}
    for d in sorted({x.shape[-1] for x in features.values()}):
        names = [n for n, x in features.items() if x.shape[-1] == d]
        for name in names:
            if features[name].ndim != 3 or features[name].shape[1] != len(examples.game):
                raise ValueError(f"feature {name!r} must be [layer, {len(examples.game)}, d], got "
                                 f"{features[name].shape}")
        stacked = jnp.concatenate([jnp.asarray(features[n], jnp.float32) for n in names])
        result = train_probes(stacked, examples.labels, len(PIECE_CLASSES), is_train, **fit_kwargs)
        scores = board_probe_scores(result, stacked[:, ~is_train], examples.labels[~is_train],
                                    examples.changed[~is_train])
        start = 0
        for name in names:
            stop = start + features[name].shape[0]
            part = jax.tree.map(lambda x: x[start:stop], result)
            out[name] = {**{k: v[start:stop] for k, v in scores.items()},
                         "train": np.asarray(part.train_accuracy), "result": part}
            start = stop
    return out


def capture_examples(model: eqx.Module, tokens: Int[np.ndarray, "game seq"], examples: BoardExamples,
                     site: str = "resid_post", chunk: int = 256) -> Float[Array, "layer n d"]:
    """`site`'s per-layer activations at the examples' positions, captured `chunk` games at a time."""
    tokens = np.asarray(tokens, np.int32)
    parts = []
    for start in range(0, len(tokens), chunk):
        acts = capture_site(model, tokens[start:start + chunk], site)  # [batch, layer, pos, d]
        rows = (examples.game >= start) & (examples.game < start + chunk)
        parts.append(acts[examples.game[rows] - start, :, examples.pos[rows]])
    return jnp.moveaxis(jnp.concatenate(parts), 0, 1)


def chess_board_probes(model: eqx.Module, train_games: dict, test_games: dict, *, frame: str = "relative",
                       control_key=None, **fit_kwargs) -> dict:
    """The probes of this module on `model` and its random-init control, with the baselines.

    **Arguments:** `train_games`, `test_games`: `generate` records (`tokens`, `boards`), e.g. the first 2,000 of
    `task.games("train")` and `task.games("test")`; `frame`; `fit_kwargs` go to `train_probes`.

    **Returns:** `fit_board_probes`'s dict for `"model"`, `"control"`, `"position"` and `"moves"`, plus
    `"majority"` scores and `"counts"` (games and examples per split).
    """
    train = board_examples(train_games["tokens"], train_games["boards"], frame)
    test = board_examples(test_games["tokens"], test_games["boards"], frame)
    examples, is_train = concat_examples(train, test)
    control = random_like(model, jax.random.PRNGKey(1) if control_key is None else control_key)
    acts = {name: jnp.concatenate([capture_examples(m, train_games["tokens"], train),
                                   capture_examples(m, test_games["tokens"], test)], axis=1)
            for name, m in (("model", model), ("control", control))}
    features = {**acts, "position": examples.position[None], "moves": examples.moves[None]}
    out = fit_board_probes(features, examples, is_train, **fit_kwargs)
    out["majority"] = majority_scores(examples, is_train)
    out["counts"] = {"train_games": len(train_games["tokens"]), "test_games": len(test_games["tokens"]),
                     "train_examples": int(is_train.sum()), "test_examples": int((~is_train).sum())}
    return out


BASELINES = {"position": "position one-hot", "moves": "bag of moves", "majority": "majority class per square"}


def board_probe_rows(out: dict, site: str = "resid_post") -> list[list]:
    """`chess_board_probes`' numbers as table rows `[probe, test overall, changed, non-empty, train overall]`: the
    model's layers, the control's, then the baselines."""
    rows = []
    for who, label in (("model", site), ("control", f"random-init control, {site}")):
        rows += [[f"{label} {i}", *(float(out[who][k][i]) for k in ("overall", "changed", "non_empty", "train"))]
                 for i in range(len(out[who]["overall"]))]
    for name in ("position", "moves"):
        rows.append([BASELINES[name], *(float(out[name][k][0]) for k in ("overall", "changed", "non_empty",
                                                                          "train"))])
    rows.append([BASELINES["majority"], *(out["majority"][k] for k in ("overall", "changed", "non_empty")), None])
    return rows


def best_layer_summary(out: dict) -> dict[str, float]:
    """The model's best layer (by overall test accuracy) and its margins over the control's best layer and every
    baseline, overall and on changed squares."""
    best = int(np.argmax(out["model"]["overall"]))
    summary = {"best_layer": best}
    for k in ("overall", "changed", "non_empty"):
        summary[k] = float(out["model"][k][best])
        others = {"control": float(np.max(out["control"][k])), "position": float(out["position"][k][0]),
                  "moves": float(out["moves"][k][0]), "majority": out["majority"][k]}
        summary[f"{k}_margin_over_best_baseline"] = summary[k] - max(others.values())
    return summary


__all__ = ["BASELINES", "FRAMES", "RELATIVE_CLASSES", "BoardExamples", "best_layer_summary", "board_examples",
           "board_probe_rows", "board_probe_scores", "capture_examples", "chess_board_probes", "completed_move_mask",
           "concat_examples", "fit_board_probes", "majority_scores", "move_counts", "to_frame"]
