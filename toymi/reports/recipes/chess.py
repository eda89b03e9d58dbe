"""Chess: can the board be read off the residual stream where a move is complete, better than every baseline?

`toymi.analysis.chess`: probes fitted on train-split games and scored on the held-out test games, at
completed-move positions only, with mine/theirs classes, beside a random-init control, a position one-hot, a bag of
moves and the majority class, scored overall, on changed squares and on non-empty squares.
"""

from __future__ import annotations

import jax
import numpy as np

from toymi.analysis.chess import best_layer_summary, board_probe_rows, chess_board_probes
from toymi.plot.probes import probe_figure

FIT_GAMES = 2000  # train-split games the probes are fitted on (issue 20: at least 2,000)
SHORT_CLASSES = ["empty", *"PNBRQK", *"pnbrqk"]  # RELATIVE_CLASSES, short enough for the figure's axis
HEADER = ["probe", "test overall", "test changed squares", "test non-empty squares", "train overall"]


def chess_recipe(run, report, smoke: bool) -> None:
    task = run.task
    n_fit = 16 if smoke else FIT_GAMES
    train = {k: v[:n_fit] for k, v in task.games("train").items()}
    test = task.games("test")
    if smoke:
        test = {k: v[:8] for k, v in test.items()}
    out = chess_board_probes(run.model, train, test, frame="relative", control_key=jax.random.PRNGKey(1),
                             steps=50 if smoke else 1500, batch_size=512, key=jax.random.PRNGKey(0))
    n_layers = run.model.config.n_layers
    counts = out["counts"]
    report.section("Board-state probes at completed moves", (
        f"A linear probe per layer of `resid_post` predicts each of the 64 squares' 13 classes (empty, my and their "
        f"6 pieces, relative to the side to move) at every position where a move is complete. Fitted on "
        f"{counts['train_examples']} positions of {counts['train_games']} train-split games, scored on "
        f"{counts['test_examples']} positions of {counts['test_games']} held-out test games. Beside it, on the same "
        "positions: the same probe on a randomly initialised model (control), on a one-hot of the position index, "
        "on a bag of moves (per square: how often it was a from- or to-square of my and of their moves so far), "
        "and each square's majority class. *Changed* squares differ from the start position."))
    report.figure("probes", probe_figure(out["model"]["result"], out["control"]["result"],
                                         [f"resid_post {i}" for i in range(n_layers)], SHORT_CLASSES,
                                         chance=out["majority"]["overall"]),
                  "probe accuracy by layer against the random-model control at completed-move positions; classes: upper "
                  "case the side to move's pieces, lower case the opponent's")
    report.table(HEADER, [["—" if v is None else v for v in row] for row in board_probe_rows(out)])
    report.numbers("board probes, best layer", best_layer_summary(out))
    report.metrics["probes"] = {
        **{f"{who}_{k}": np.asarray(out[who][k]).tolist() for who in ("model", "control", "position", "moves")
           for k in ("overall", "changed", "non_empty")},
        "majority": out["majority"], **counts}
