"""The induction phase change on Nanda's recipe with the period drawn per sequence: against its 1-layer control,
and at two smaller initial weight scales.

    PYTHONPATH=. python benchmarks/induction_phase.py --runs DIR    # README's numbers (~14 min on 2 CPU cores)
    PYTHONPATH=. python benchmarks/induction_phase.py --smoke       # a few steps of tiny models: a test runs this

`tasks/induction_random_period.toml` (a chunk of 4 to 28 distinct tokens repeated to fill 84, so no head attending a
fixed distance back can copy) is trained with 2 layers as specified, with 1 (`model.n_layers=1`, the control),
and with 2 at `model.init_scale` 0.8 (TransformerLens's 0.8/√d_model) and 0.14 (std 0.02, for 4,000 steps: the
fixed-period recipe's plateau grew with a smaller initial scale), into `--runs` (reused when there). Per model: the test loss (repeated tokens) at steps 200 / 400 / 600 / 800, the
first evaluated step below 4.0 / 2.0 / 1.0, the final loss, and at each checkpoint the attention of the last layer's
heads from each repeated position t to s, the position after its token's previous occurrence (min–max over heads:
the induction pattern, `toymi.circuits.qk_attribution.induction_head`'s score), and layer 0's largest previous-token
score, both on the first 256 test sequences.

Writes `DIR/induction_phase.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import REPO_ROOT, runs_main  # noqa: E402

import toymi  # noqa: E402
from toymi.experiment.spec import Spec  # noqa: E402

SPEC = "tasks/induction_random_period.toml"
MODELS = {  # label -> (directory under --runs, overrides)
    "2 layers": ("induction_2l", []),
    "1 layer": ("induction_1l", ["model.n_layers=1"]),
    "2 layers, init_scale 0.8": ("induction_2l_init0.8", ["model.init_scale=0.8"]),
    "2 layers, init_scale 0.14, 4,000 steps": ("induction_2l_init0.14", ["model.init_scale=0.14", "train.steps=4000"]),
}
AT_STEPS = (200, 400, 600, 800)
BELOW = (4.0, 2.0, 1.0)
SMOKE = ["task.subseq_len=6", "task.min_subseq_len=3", "task.vocab=24", "task.batch_size=8", "task.eval_size=16",
         "model.d_model=16", "model.d_head=4", "train.steps=20", "train.eval_every=10", "train.checkpoint_every=10"]


def run(args, runs: Path) -> list[dict]:
    rows = []
    for label, (directory, overrides) in list(MODELS.items())[:2] if args.smoke else MODELS.items():
        extra = SMOKE if args.smoke else []  # smoke: the recipe and its control (the others differ in settings)
        trained = toymi.train_or_load(Spec.load(REPO_ROOT / SPEC, overrides + extra), runs / directory)
        rows.append({"model": label, **losses(trained), "heads": head_scores(trained)})
        print(summary(rows[-1:]), flush=True)
    return rows


def losses(run) -> dict:
    """The test loss at `AT_STEPS`, the first evaluated step below each of `BELOW`, and the final loss."""
    m = run.metrics
    steps, loss = np.asarray(m["step"]), np.asarray(m["test_loss"], np.float64)
    at = [float(loss[steps == s][0]) if (steps == s).any() else None for s in AT_STEPS]
    below = {str(b): (int(steps[loss < b][0]) if (loss < b).any() else None) for b in BELOW}
    return {"loss_at": at, "first_below": below, "final_step": int(steps[-1]), "final_loss": float(loss[-1])}


def head_scores(run) -> list[dict]:
    """At each checkpoint: the last layer's heads' attention from t to s (min and max over heads) and layer 0's
    largest previous-token score, on the first 256 test sequences."""
    import jax.numpy as jnp

    from toymi.circuits.qk_attribution import induction_scores
    from toymi.dissect.attention import previous_token_score

    tokens = jnp.asarray(run.task.eval_batches()["test"].tokens[:256])
    out = []
    for step in run.steps:
        model = run.checkpoint(step)
        last = np.asarray(induction_scores(model, tokens))[-1]
        _, acts = model.run(tokens, capture=["pattern"])
        previous = np.asarray(previous_token_score(acts["pattern"]))[0]
        out.append({"step": int(step), "induction_min": float(last.min()), "induction_max": float(last.max()),
                    "previous_token_max": float(previous.max())})
    return out


def summary(rows: list[dict]) -> str:
    """The README table: one row per model."""
    lines = ["| model | test loss at step " + " / ".join(map(str, AT_STEPS)) + " | first step below "
             + " / ".join(map(str, BELOW)) + " | final loss | last layer's attention t → s per head (min–max) at "
             "each checkpoint | layer 0's previous-token score at the last |", "|---|---|---|---|---|---|"]
    for r in rows:
        at = " / ".join("–" if v is None else f"{v:.2f}" for v in r["loss_at"])
        below = " / ".join("–" if v is None else f"{v:,}" for v in r["first_below"].values())
        heads = ", ".join(f"{h['step']:,}: {h['induction_min']:.2f}–{h['induction_max']:.2f}" for h in r["heads"])
        lines.append(f"| {r['model']} | {at} | {below} | {r['final_loss']:.3f} (step {r['final_step']:,}) | "
                     f"{heads} | {r['heads'][-1]['previous_token_max']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    runs_main("induction_phase", __doc__, "tiny models trained 20 steps", run, summary, SPEC, argv)


if __name__ == "__main__":
    main()
