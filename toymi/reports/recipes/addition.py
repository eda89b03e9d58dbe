"""Addition: loss per answer digit and per subtask (base add, make/use carry, sum-9 cascades), and attention."""

from __future__ import annotations

import jax
import numpy as np

from toymi.analysis.addition import per_token_loss, subtask_loss
from toymi.dissect.probes import capture_site
from toymi.plot.attention import attention_patterns
from toymi.tasks.addition import question_digits, subtask_labels


def addition_recipe(run, report, smoke: bool) -> None:
    task, model = run.task, run.model
    report.section("Loss per answer digit and subtask", "Answer digits are most significant first (A0 is the "
                   "carry-out digit). Subtasks (Quirke & Barez): BA base add, MC make carry, MS make sum 9, UC use "
                   "carry, US use a sum-9 cascade. Cells are mean cross-entropy over the eval set's examples "
                   "where the subtask occurs at that digit.")
    for name, batch in task.eval_batches().items():
        if smoke:
            batch = jax.tree.map(lambda x: x[:64], batch)
        loss = per_token_loss(task, model, batch)
        table = subtask_loss(loss, subtask_labels(*question_digits(batch.tokens)))
        n = loss.shape[1]
        report.text(f"**{name}** ({len(batch)} questions; whole-answer accuracy "
                    f"{float(np.mean(np.asarray(loss).max(1) < np.log(2))):.4f} by loss < ln 2 at every digit)")
        report.table(["subtask"] + [f"A{i}" for i in range(n)], [[k, *v] for k, v in table.items()])
        report.metrics[f"{name}_subtask_loss"] = {k: v.tolist() for k, v in table.items()}
        report.metrics[f"{name}_digit_loss"] = np.asarray(loss).mean(0).tolist()
    tokens = task.eval_batches()["test"].tokens[:1]
    pattern = capture_site(model, tokens, "pattern")
    report.section("Attention", "Every head on one test question (tokens: digits, `+` 10, `=` 11).")
    labels = [str(int(t)) if t < 10 else {10: "+", 11: "="}[int(t)] for t in np.asarray(tokens[0])]
    report.figure("patterns", attention_patterns(np.asarray(pattern[0]), labels), "attention on one question")
