"""Figures for the residual-stream and attention dissection tools (docs/images/dissect_*.png), from two real runs.

    .venv/bin/python benchmarks/figures_dissect_residual.py [--induction RUN] [--grokking RUN] [--out docs/images]
    .venv/bin/python benchmarks/figures_dissect_residual.py --smoke --out DIR   # tiny models, 20 steps: a test

Trains `tasks/induction_quick.toml` (~1 min on 2 cores) and `tasks/grokking_quick.toml` (~2-7 min) into
/tmp/toymi_dissect_figures/ unless given existing run directories, then prints the numbers the figures show.
`--smoke` draws the same figures into `--out`, from the runs given or from tiny versions of both trained into
`--out/runs`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import toymi  # noqa: E402
from _bench import SMOKE_OVERRIDES  # noqa: E402
from toymi.dissect.attention import head_scores, repeated_random_tokens  # noqa: E402
from toymi.dissect.circuits import composition_scores, ov_copying_scores  # noqa: E402
from toymi.dissect.logit_lens import final_scale, logit_diff_directions, logit_lens, read_out  # noqa: E402
from toymi.dissect.residual import ACCUMULATED_SITES, decompose_resid, decomposition_sites  # noqa: E402
from toymi.dissect.similarity import cka_matrix, pca  # noqa: E402
from toymi.plot.attention import attention_patterns, composition_heatmaps, head_score_heatmaps  # noqa: E402
from toymi.plot.curves import save_figure  # noqa: E402
from toymi.plot.residual import attribution_bars, cka_heatmap, logit_lens_heatmap, pca_scatter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("dissect_head_scores.png", "dissect_attention_patterns.png", "dissect_composition.png",
           "dissect_logit_lens.png", "dissect_dla.png", "dissect_pca.png", "dissect_cka.png")


def trained(task: str, directory: Path | None, overrides: list[str] = ()) -> toymi.Run:
    directory = directory or Path("/tmp/toymi_dissect_figures") / task
    if not (directory / "spec.toml").exists():
        from toymi.experiment import train

        train(toymi.Spec.load(REPO / "tasks" / f"{task}.toml", list(overrides)), directory, progress=False)
    return toymi.load_run(directory)


def induction_figures(run: toymi.Run, out: Path) -> None:
    model, task = run.model, run.task
    vocab, half = task.vocab, (model.config.n_ctx - 1) // 2
    tokens = repeated_random_tokens(jax.random.PRNGKey(0), 256, half, vocab, bos=vocab)  # [batch, 1 + 2 half]
    capture = {"pattern", *decomposition_sites(model.config), *ACCUMULATED_SITES}
    _, acts = jax.jit(lambda t: model.run(t, capture=capture))(tokens)

    scores = head_scores(model, tokens)
    for name, values in scores.items():
        print(f"{name} scores [layer, head]:\n{np.round(np.asarray(values), 3)}")
    save_figure(head_score_heatmaps(scores, title="induction_quick: head scores on repeated random tokens"),
                out / "dissect_head_scores.png")

    labels = ["BOS"] + [str(int(t)) for t in tokens[0, 1:]]
    save_figure(attention_patterns(acts["pattern"][0], labels,
                                   title="induction_quick: patterns on one repeated random sequence"),
                out / "dissect_attention_patterns.png")

    composition = {kind: composition_scores(model, kind) for kind in "QKV"}
    for kind, values in composition.items():
        print(f"{kind}-composition L0 -> L1 [head_a, head_b]:\n{np.round(np.asarray(values[0, :, 1, :]), 3)}")
    print("random baseline 1/sqrt(d_model):", round(1 / np.sqrt(model.config.d_model), 3))
    print("OV copying scores [layer, head]:\n",
          np.round(np.asarray(ov_copying_scores(model, tokens=jnp.arange(vocab))), 3))
    save_figure(composition_heatmaps(composition, title="induction_quick: composition scores",
                                     baseline=1 / np.sqrt(model.config.d_model)),
                out / "dissect_composition.png")

    # Logit lens and DLA on the second copy: position i predicts token i + 1.
    second = slice(half + 1, 2 * half)  # query positions whose next token is a repeat
    lens = jax.nn.log_softmax(logit_lens(model, acts), -1)  # [batch, layer + 1, pos, vocab]
    next_tokens = jnp.concatenate([tokens[:, 1:], tokens[:, -1:]], 1)
    correct_logprob = jnp.take_along_axis(lens, next_tokens[:, None, :, None], -1)[..., 0].mean(0)  # [layer+1, pos]
    print("logit lens: mean log-prob of the correct next token over the second copy, per layer:",
          np.round(np.asarray(correct_logprob[:, second].mean(-1)), 3))
    position_labels = ["BOS"] + [f"1st {i}" for i in range(1, half + 1)] + [f"2nd {i}" for i in range(1, half + 1)]
    save_figure(logit_lens_heatmap(correct_logprob[:, :-1], position_labels=position_labels[:-1],
                                   title="induction_quick: logit lens on repeated random tokens (mean of 256)",
                                   value_label="log-prob of the next token"),
                out / "dissect_logit_lens.png")

    stack, component_labels = decompose_resid(model, acts)
    scale = final_scale(model, acts)
    # direct_logit_attribution on the second copy alone: read_out with the positions' own cached scales
    diff = read_out(model, stack[..., second, :], None if scale is None else scale[..., second],
                    logit_diff_directions(model, next_tokens[:, second], tokens[:, second]))  # [batch, comp, pos]
    mean_diff = diff.mean((0, 2))
    print("DLA, logit(next) - logit(current) over the second copy:",
          dict(zip(component_labels, np.round(np.asarray(mean_diff), 2))))
    save_figure(attribution_bars(mean_diff, component_labels,
                                 title="induction_quick: direct logit attribution on the second copy",
                                 value_label="logit(next token) - logit(current token)"),
                out / "dissect_dla.png")


def grokking_figures(run: toymi.Run, out: Path) -> None:
    task = run.task
    tokens = jnp.concatenate([task.train.tokens, task.test.tokens])  # every (a, b) pair
    answers = jnp.concatenate([task.train.targets, task.test.targets])[:, -1]
    model = run.model
    _, acts = jax.jit(lambda t: model.run(t, capture=["resid_post"]))(tokens)
    final = acts["resid_post", -1][:, -1]  # [pair, d_model] at "="
    projected, _, explained = pca(final, 2)
    print("PCA of the final residual at '=': explained variance of PC1, PC2:", np.round(np.asarray(explained), 3))
    save_figure(pca_scatter(projected, answers, explained, colour_label=f"answer (a + b) mod {task.p}",
                            title="grokking_quick: final residual at '=' (all pairs)"),
                out / "dissect_pca.png")

    steps = run.steps
    series = run.checkpoint_series(steps)
    per_step = jax.jit(jax.vmap(lambda m: m.run(tokens, capture=["resid_post"])[1]["resid_post", -1][:, -1]))(series)
    matrix = cka_matrix(per_step)  # [step, step]
    print("CKA across checkpoints", steps, ":\n", np.round(np.asarray(matrix), 3))
    save_figure(cka_heatmap(matrix, [f"step {s}" for s in steps],
                            title="grokking_quick: CKA of the final residual at '='"),
                out / "dissect_cka.png")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--induction", type=Path, help="an existing induction_quick run directory")
    parser.add_argument("--grokking", type=Path, help="an existing grokking_quick run directory")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny models trained 20 steps into --out/runs, where --induction / --grokking are not given")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    runs = {"induction_quick": args.induction, "grokking_quick": args.grokking}
    if args.smoke:  # tiny runs of its own where none is given, never the full runs' defaults in /tmp
        runs = {task: given or args.out / "runs" / task for task, given in runs.items()}

    def run(task: str) -> toymi.Run:
        return trained(task, runs[task], SMOKE_OVERRIDES[task] if args.smoke else [])

    induction_figures(run("induction_quick"), args.out)
    grokking_figures(run("grokking_quick"), args.out)
    print(f"wrote {len(FIGURES)} figures to {args.out}: {', '.join(FIGURES)}")
    return {"out": str(args.out), "smoke": args.smoke, "figures": [str(args.out / f) for f in FIGURES]}


if __name__ == "__main__":
    main()
