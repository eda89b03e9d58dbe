"""Chess: is the board state linearly decodable from the residual stream at each layer, against a random model?"""

from __future__ import annotations

import jax
import numpy as np

from toymi.dissect.probes import probe_model, split_by_seed
from toymi.plot.probes import probe_figure


def chess_recipe(run, report, smoke: bool) -> None:
    truth = run.task.ground_truth("test")
    tokens, board = truth["tokens"], truth["board"]
    if smoke:
        tokens, board = tokens[:8], board[:8]
    is_train = split_by_seed(len(tokens), 0.2, seed=0)  # whole games on one side
    model, control = probe_model(run.model, tokens, board, len(truth["piece_classes"]), is_train,
                                 control_key=jax.random.PRNGKey(1), steps=50 if smoke else 1500,
                                 batch_size=512, key=jax.random.PRNGKey(0))
    majority = float(np.mean([np.mean(col[col >= 0] == np.bincount(col[col >= 0]).argmax())
                              for col in np.asarray(board).reshape(-1, board.shape[-1]).T]))
    n_layers = run.model.config.n_layers
    report.section("Board-state probes", f"A linear probe per layer of `resid_post` predicts each of the 64 squares' "
                   f"13 classes at every move position of {len(tokens)} test-split games (80/20 by game), fitted for "
                   "every layer at once; the control is the same probe on a randomly initialised model. Always "
                   f"answering each square's most common class scores {majority:.4f}.")
    report.figure("probes", probe_figure(model, control, [f"resid_post {i}" for i in range(n_layers)],
                                         list(truth["piece_classes"]), chance=majority),
                  "probe accuracy by layer against the random-model control")
    report.table(["layer", "test accuracy", "train accuracy", "control test accuracy"],
                 [[f"resid_post {i}", float(model.test_accuracy[i]), float(model.train_accuracy[i]),
                   float(control.test_accuracy[i])] for i in range(n_layers)])
    report.metrics["probes"] = {"test_accuracy": np.asarray(model.test_accuracy).tolist(),
                                "control_test_accuracy": np.asarray(control.test_accuracy).tolist(),
                                "majority_baseline": majority}
