"""The causal-methods figures of docs/images/ (dissect_*.png), from a small induction model trained here.

    python benchmarks/figures_dissect_causal.py [--run DIR] [--out docs/images]
    python benchmarks/figures_dissect_causal.py --smoke --out DIR   # a tiny model trained 20 steps: a test

Trains tasks/induction_quick.toml (about a minute on 2 cores) unless `--run` names a finished run, then draws:

- dissect_activation_patching.png: residual stream, attention output and per-head patching on an induction pair;
- dissect_path_patching.png: path patching from every head to the logits and to the induction head's q, k, v;
- dissect_attribution_patching.png: attribution patching against real patching, cell by cell;
- dissect_ablation.png: zero, mean and resample ablation of every head on the induction loss;
- dissect_steering.png: a "the answer is token 5" steering vector swept over scale x layer.

The clean/corrupted pair (`benchmarks/patching_speed.py::induction_pairs`): BOS, 24 distinct random tokens with
positions 3..10 copied to 17..24, so the last token A occurred at position 10 and the induction answer is B, the
token at 11. The corrupted input replaces that earlier A: no induction is possible. Metric: logit(B) - logit(C), C the
token at 12; grids are shown as the fraction of the clean -> corrupted change each patch causes.

`--smoke` trains a tiny model on the same task 20 steps into `--out/run` and draws every figure into `--out` from
pairs of 8.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import toymi  # noqa: E402
from _bench import SMOKE_OVERRIDES  # noqa: E402
from patching_speed import induction_pairs  # noqa: E402
from toymi.dissect.ablation import ablate_heads  # noqa: E402
from toymi.dissect.attribution import compare_attribution  # noqa: E402
from toymi.dissect.metrics import CrossEntropy, LogitDiff, normalised  # noqa: E402
from toymi.dissect.patching import patching_grid, path_patching, run_metric  # noqa: E402
from toymi.dissect.steering import steering_sweep, steering_vector  # noqa: E402
from toymi.plot.curves import save_figure  # noqa: E402
from toymi.plot.patching import (  # noqa: E402
    attribution_scatter, head_position_rows, patching_heatmaps, steering_curves,
)

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tasks" / "induction_quick.toml"
FIGURES = ("dissect_activation_patching.png", "dissect_path_patching.png", "dissect_attribution_patching.png",
           "dissect_ablation.png", "dissect_steering.png")
SMOKE_BATCH = 8


def position_labels(n: int) -> list[str]:
    special = {0: "BOS", 10: "A", 11: "B", 12: "C", 24: "A'"}
    return [f"{special[i]} {i}" if i in special else str(i) for i in range(n)]


def with_answer(tokens, token: int):
    """Induction pairs whose answer (position 11) is `token`, swapping it with B elsewhere to keep tokens distinct."""
    b = tokens[:, 11:12]
    swapped = jnp.where(tokens == token, b, tokens)
    return swapped.at[:, 11].set(token)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=None)
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--smoke", action="store_true",
                   help="pairs of 8, on --run or a tiny model trained 20 steps into --out/run")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.batch = SMOKE_BATCH
    if args.run is None:
        from toymi.experiment.spec import Spec
        from toymi.experiment import train

        args.run = out / "run" if args.smoke else f"/tmp/toymi_figures_causal_{os.getpid()}"
        train(Spec.load(SPEC, SMOKE_OVERRIDES["induction_quick"] if args.smoke else []), args.run, progress=False)
    run = toymi.load_run(args.run)
    model = run.model
    n_layers = model.config.n_layers

    clean, corrupted, answer, distractor = induction_pairs(jax.random.PRNGKey(1), args.batch)
    metric = LogitDiff(answer, distractor)
    m_clean, m_corrupt = float(run_metric(model, clean, metric)), float(run_metric(model, corrupted, metric))
    print(f"logit diff: clean {m_clean:.2f}, corrupted {m_corrupt:.2f}")

    def effect(grid):  # fraction of the clean -> corrupted change that the patch causes
        return 1.0 - np.asarray(normalised(grid, m_clean, m_corrupt))

    # ---- activation patching -------------------------------------------------------------------------------------
    resid = patching_grid(model, clean, corrupted, metric, "resid_pre", ("layer", "pos"), direction="noising")
    attn = patching_grid(model, clean, corrupted, metric, "attn_out", ("layer", "pos"), direction="noising")
    heads = patching_grid(model, clean, corrupted, metric, "z", ("layer", "head", "pos"), direction="noising")
    rows, row_labels = head_position_rows(effect(heads))
    labels = position_labels(clean.shape[1])
    fig = patching_heatmaps(
        {"resid_pre (layer x position)": effect(resid), "attn_out (layer x position)": effect(attn)},
        xticklabels=labels, colorbar_label="fraction of clean -> corrupted change",
        title=f"activation patching, induction pair (clean logit diff {m_clean:.1f}, corrupted {m_corrupt:.1f})")
    fig2 = patching_heatmaps({"head output z (layer.head x position)": rows}, xticklabels=labels,
                             ylabels={"head output z (layer.head x position)": "layer.head"},
                             colorbar_label="fraction of clean -> corrupted change")
    fig2.axes[0].set_yticks(range(len(row_labels)), row_labels)
    # one PNG: the two figures stacked
    save_stacked([fig, fig2], out / "dissect_activation_patching.png")

    # ---- path patching -------------------------------------------------------------------------------------------
    by_head = np.asarray(effect(patching_grid(model, clean, corrupted, metric, "z", ("layer", "head"),
                                              direction="noising")))
    induction = int(np.argmax(by_head[-1]))
    print(f"layer {n_layers - 1} head with the largest patching effect: {n_layers - 1}.{induction}")
    paths = {"sender -> logits": effect(path_patching(model, clean, corrupted, metric))}
    for what in ("q", "k", "v"):
        grid = path_patching(model, clean, corrupted, metric, receivers=[(n_layers - 1, induction)],
                             receiver_input=what)
        paths[f"sender -> {n_layers - 1}.{induction} {what}"] = effect(grid)
    fig = patching_heatmaps(paths, xlabels={k: "sender head" for k in paths},
                            ylabels={k: "sender layer" for k in paths},
                            colorbar_label="fraction of clean -> corrupted change",
                            title="path patching: each sender head's effect along one path")
    save_figure(fig, out / "dissect_path_patching.png")

    # ---- attribution patching ------------------------------------------------------------------------------------
    cmp_resid = compare_attribution(model, clean, corrupted, metric, "resid_pre", ("layer", "pos"))
    cmp_heads = compare_attribution(model, clean, corrupted, metric, "z", ("layer", "head", "pos"))
    correlations = {}
    for name, c in (("resid_pre", cmp_resid), ("z", cmp_heads)):
        correlations[name] = float(c.correlation)
        print(f"attribution vs patching, {name}: r = {correlations[name]:.3f}, "
              f"max |diff| {float(c.max_abs_diff):.3f}")
    fig = attribution_scatter({
        "resid_pre, layer x pos": (effect(cmp_resid.patched), effect(cmp_resid.attributed)),
        "z, layer x head x pos": (effect(cmp_heads.patched), effect(cmp_heads.attributed)),
    }, title="attribution vs activation patching, induction pair", units="fraction of clean -> corrupted change")
    save_figure(fig, out / "dissect_attribution_patching.png")

    # ---- ablation ------------------------------------------------------------------------------------------------
    batch = run.task.evals["test"]
    tokens = batch.tokens[:128]
    loss = CrossEntropy(batch.targets[:128], batch.loss_mask[:128] > 0)
    base_loss = float(run_metric(model, tokens, loss))
    grids = {
        "zero": ablate_heads(model, tokens, loss, "zero"),
        "mean": ablate_heads(model, tokens, loss, "mean"),
        "resample": ablate_heads(model, tokens, loss, "resample", key=jax.random.PRNGKey(0)),
    }
    fig = patching_heatmaps({f"{k} ablation": np.asarray(v) for k, v in grids.items()}, center=base_loss,
                            xlabels={f"{k} ablation": "head" for k in grids}, colorbar_label="loss on repeated tokens",
                            title=f"head ablation on the induction loss (unablated {base_loss:.3f})")
    save_figure(fig, out / "dissect_ablation.png")

    # ---- steering ------------------------------------------------------------------------------------------------
    pool, _, _, _ = induction_pairs(jax.random.PRNGKey(2), 256)
    fives = with_answer(pool[:128], 5)
    others = pool[128:][np.asarray(pool[128:, 11] != 5)]
    vectors = steering_vector(model, fives, others, "resid_post")
    held_out, _, held_answer, _ = induction_pairs(jax.random.PRNGKey(3), 64)
    keep = np.asarray(held_answer != 5)
    held_out, held_answer = held_out[keep], held_answer[keep]
    towards_five = LogitDiff(jnp.full(held_answer.shape, 5), held_answer)
    scales = jnp.linspace(-2.0, 4.0, 13)
    grid = steering_sweep(model, held_out, towards_five, vectors, scales, site="resid_post", positions=[24])
    fig = steering_curves(np.asarray(grid), np.asarray(scales),
                          [f"resid_post layer {l}" for l in range(n_layers)],
                          ylabel="logit(5) - logit(true answer), last position",
                          title="steering with mean(answer = 5) - mean(answer != 5)")
    save_figure(fig, out / "dissect_steering.png")
    print(f"wrote {', '.join(FIGURES)} to {out}")
    return {"run": str(args.run), "smoke": args.smoke, "logit_diff_clean": m_clean, "logit_diff_corrupted": m_corrupt,
            "induction_head": [n_layers - 1, induction], "attribution_correlation": correlations,
            "unablated_loss": base_loss, "figures": [str(out / f) for f in FIGURES]}


def save_stacked(figs, path) -> None:
    """Render figures and stack them vertically into one PNG (they have different grids and widths)."""
    import io

    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    images = []
    for fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, dpi=120, format="png")
        plt.close(fig)
        buf.seek(0)
        images.append(mpimg.imread(buf, format="png"))
    width = max(im.shape[1] for im in images)
    padded = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0) for im in images]
    plt.imsave(path, np.concatenate(padded, axis=0))


if __name__ == "__main__":
    main()
