"""LayerNorm removal (Heimersheim 2024) and activation plateaus on toymi's addition_quick model: the numbers and the
figures docs/images/dissect_ln_removal.png and docs/images/dissect_plateaus.png.

    .venv/bin/python benchmarks/figures_dissect_layernorm_plateaus.py [--run DIR] [--part all|ln|plateaus]
                                                                      [--out docs/images]
    .venv/bin/python benchmarks/figures_dissect_layernorm_plateaus.py --smoke --out DIR   # a tiny model: a test

Trains tasks/addition_quick.toml into DIR (default /tmp/toymi_addition_quick) unless a run is already there. LN
removal: AdamW (lr 1e-3, betas 0.9/0.98, weight decay 0.1), the five norms fixed one at a time with 200 steps after
each and 200 more at the end; the control fine-tunes 1,200 steps with the norms kept, same optimiser and batches.
Plateaus: resid_pre of layer 1 at the `=` token, 32 test questions moved toward 32 others (real), a random direction
of the same norm, and the difference of means between questions whose sum has six digits and those whose sum has
five (steering); KL averaged over the answer positions.

`--smoke` trains a tiny addition model 20 steps into `--out/run`, fine-tunes 2 steps per stage, and draws both
figures into `--out`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import toymi  # noqa: E402
from toymi.dissect.ln_removal import finetune_with_norms, remove_layernorm  # noqa: E402
from toymi.dissect.plateaus import plateau_sweep, steering_vector  # noqa: E402
from toymi.plot.curves import save_figure  # noqa: E402
from toymi.plot.ln_removal import ln_removal_curves  # noqa: E402
from toymi.plot.plateaus import plateau_curves  # noqa: E402

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
FIGURES = {"ln_removal": "dissect_ln_removal.png", "plateaus": "dissect_plateaus.png"}
FINETUNE_STEPS = (200, 200)  # (after each removal, more at the end)
# `--smoke`: the spec's 5-digit task (the plateau sweep's split by a six-digit sum needs it) on a model of a few
# thousand parameters, 20 steps, 64 test questions (the sweep moves 32 of them toward 32 others).
SMOKE = ["model.d_model=16", "model.n_heads=2", "model.d_head=8", "model.d_mlp=32", "task.batch_size=16",
         "task.eval_size=64", "train.steps=20", "train.eval_every=10", "train.checkpoint_every=20",
         "train.warmup_steps=0"]
SMOKE_FINETUNE_STEPS = (2, 2)


def trained_run(directory: Path, overrides: list[str] = ()) -> toymi.Run:
    if not (directory / "spec.toml").exists():
        from toymi.experiment import train

        began = time.perf_counter()
        spec = toymi.Spec.load(Path(__file__).resolve().parent.parent / "tasks" / "addition_quick.toml",
                               list(overrides))
        train(spec, directory, progress=False)
        print(f"trained addition_quick into {directory} in {time.perf_counter() - began:.0f} s")
    return toymi.load_run(directory)


def ln_removal(run: toymi.Run, out: Path, steps_per_removal: int, final_steps: int) -> dict:
    model, task = run.model, run.task
    optimizer = optax.adamw(1e-3, b1=0.9, b2=0.98, weight_decay=0.1)
    key = jax.random.PRNGKey(0)
    began = time.perf_counter()
    removal = remove_layernorm(model, task, optimizer, key=key, steps_per_removal=steps_per_removal,
                               final_steps=final_steps)
    removal_s = time.perf_counter() - began
    began = time.perf_counter()
    control = finetune_with_norms(model, task, optimizer, key=key, steps=len(removal.train_loss),
                                  chunk_steps=steps_per_removal)  # the removal's compiled chunk, reused
    control_s = time.perf_counter() - began
    columns = ("test_loss", "test_answer_accuracy", "cascade_loss", "cascade_answer_accuracy")
    print(f"\nLayerNorm removal ({removal_s:.0f} s) — scales {np.round(removal.scales, 3).tolist()}")
    print(f"{'stage':28s} {'step':>5s} " + " ".join(f"{c:>24s}" for c in columns))
    for row in removal.stages:
        print(f"{row['stage']:28s} {row['step']:5d} " + " ".join(f"{row[c]:24.5f}" for c in columns))
    print(f"control, norms kept ({control_s:.0f} s)")
    for row in control.stages:
        print(f"{row['stage']:28s} {row['step']:5d} " + " ".join(f"{row[c]:24.5f}" for c in columns))
    summary = {c: {"before": removal.stages[0][c], "ln_free": removal.stages[-1][c], "control": control.stages[-1][c]}
               for c in columns}
    for c, v in summary.items():
        print(f"{c}: before {v['before']:.5f}, LN-free {v['ln_free']:.5f}, control {v['control']:.5f}, "
              f"LN-free minus control {v['ln_free'] - v['control']:+.5f}")
    removed_at = [row["step"] for row in removal.stages if row["stage"].startswith("removed")]
    names = [row["stage"].removeprefix("removed ") for row in removal.stages if row["stage"].startswith("removed")]
    fig = ln_removal_curves(removal.train_loss, control.train_loss, np.array(removed_at), names,
                            title="addition_quick: LayerNorm removed one norm at a time vs control")
    save_figure(fig, out / FIGURES["ln_removal"])
    return summary


def plateaus(run: toymi.Run, out: Path) -> dict:
    model, task = run.model, run.task
    tokens = task.test.tokens
    equals = 2 * task.n_digits + 1
    base, other = tokens[:32], tokens[32:64]
    six_digit = tokens[:, equals + 1] == 1  # the answer's leading digit s_n: a carry out of the top digit
    steering = steering_vector(model, tokens[six_digit], tokens[~six_digit], "resid_pre", 1, equals)
    ts = jnp.linspace(0.0, 1.5, 61)
    began = time.perf_counter()
    result = plateau_sweep(model, base, other, "resid_pre", 1, equals, ts, key=jax.random.PRNGKey(0),
                           steering=steering, kl_positions=task.loss_positions())
    print(f"\nplateau sweep: {result.kl.size} KL values in {time.perf_counter() - began:.1f} s "
          f"(one compiled vmap); real displacement norm median {np.median(result.distance):.2f}")
    median_kl = {}
    for t in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5):
        i = int(np.argmin(np.abs(result.ts - t)))
        median_kl[t] = {name: float(np.median(kl[:, i])) for name, kl in zip(result.names, result.kl)}
        print(f"t = {result.ts[i]:.3f}: median KL " + ", ".join(f"{k} {v:.4f}" for k, v in median_kl[t].items()))
    fig = plateau_curves(result.ts, result.kl, result.names,
                         title="addition_quick: resid_pre[1] at '=' moved toward real / random / steering directions")
    save_figure(fig, out / FIGURES["plateaus"])
    return {"median_kl_at_t": median_kl}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("/tmp/toymi_addition_quick"))
    parser.add_argument("--part", choices=("all", "ln", "plateaus"), default="all")
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the figures go")
    parser.add_argument("--smoke", action="store_true", help="a tiny model trained 20 steps into --out/run")
    args = parser.parse_args(argv)
    if args.smoke:  # a tiny run of its own, never the full run's default in /tmp
        args.run = args.out / "run"
    run = trained_run(args.run, SMOKE if args.smoke else [])
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"run": str(args.run), "smoke": args.smoke}
    if args.part in ("all", "plateaus"):
        report["plateaus"] = plateaus(run, args.out)
    if args.part in ("all", "ln"):
        report["ln_removal"] = ln_removal(run, args.out, *(SMOKE_FINETUNE_STEPS if args.smoke else FINETUNE_STEPS))
    report["figures"] = [str(args.out / FIGURES[part]) for part in FIGURES if part in report]
    print(f"wrote {', '.join(report['figures'])}")
    return report


if __name__ == "__main__":
    main()
