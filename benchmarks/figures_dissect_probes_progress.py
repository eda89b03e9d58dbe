"""Figures and numbers for probes and grokking progress measures, from real toymi runs.

    python benchmarks/figures_dissect_probes_progress.py [--grok-dir DIR] [--chess-dir DIR] [--skip-chess]
                                                         [--out benchmarks/results] [--images docs/images]
    python benchmarks/figures_dissect_probes_progress.py --smoke --out DIR   # tiny models, seconds: a test

- Grokking: trains `tasks/grokking_quick.toml` with a checkpoint every 100 steps (26 checkpoints) into
  `--grok-dir` unless a run is already there; finds the key frequencies of the final model by neuron clustering;
  computes every progress measure over the whole checkpoint series in one vmapped call (timed after compile, and
  checked against the chunked `lax.map` path); saves `docs/images/dissect_grokking_progress.png`.
- Chess: trains `tasks/chess_quick.toml` into `--chess-dir` unless a run is there; probes the board state
  (64 squares x 13 classes) at the embedding (`resid_pre` of layer 0) and every layer's `resid_post`, for the
  trained model and for its step-0 checkpoint (the random-initialisation control), in one vmapped fit on the held-out
  test games split 80/20 by game; saves `docs/images/dissect_chess_probes.png`.

Prints the numbers and writes them to `--out`/dissect_probes_progress.json (default benchmarks/results).

`--smoke` trains tiny models of both tasks (grokking: p = 23, 50 steps, 11 checkpoints; chess: 60 games of 8 plies,
20 steps) into `--out`, fits the probes 30 steps, and writes the figures and the JSON into `--out`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _bench
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")

import toymi  # noqa: E402
from toymi.analysis.modular import progress  # noqa: E402
from toymi.analysis.modular.key_frequencies import neuron_key_frequencies  # noqa: E402
from toymi.dissect import probes  # noqa: E402
from toymi.plot.curves import save_figure  # noqa: E402
from toymi.plot.probes import probe_figure  # noqa: E402
from toymi.plot.progress import progress_figure  # noqa: E402
from toymi.experiment.spec import Spec  # noqa: E402
from toymi.experiment import train  # noqa: E402

IMAGES = _bench.REPO_ROOT / "docs" / "images"
GROKKING = ["train.checkpoint_every=100"]
PROBE_STEPS = 1500
# `--smoke`: models of a few thousand parameters (grokking: `_bench.SMOKE_OVERRIDES`); chess generates its few
# games into `--out`, not the shared cache.
SMOKE_CHESS = ["task.n_games=60", "task.n_test_games=12", "task.max_plies=8", "task.batch_size=8",
               "model.d_model=16", "model.d_mlp=32", "model.d_head=4", "train.steps=20", "train.eval_every=10",
               "train.checkpoint_every=20", "train.warmup_steps=0"]
SMOKE_PROBE_STEPS = 30


def _run(spec_path: str, directory: Path, overrides=()) -> toymi.Run:
    if not (directory / "spec.toml").exists():
        print(f"training {spec_path} into {directory} ...", flush=True)
        train(Spec.load(_bench.REPO_ROOT / spec_path, list(overrides)), directory, progress=False)
    return toymi.load_run(directory)


def grokking(directory: Path, images: Path, overrides: list[str]) -> dict:
    run = _run("tasks/grokking_quick.toml", directory, overrides)
    steps = np.asarray(run.steps)
    series = run.checkpoint_series()
    task = run.task
    keys = neuron_key_frequencies(run.model, task)
    compile_and_run = _bench.timed(lambda: jax.block_until_ready(progress.progress_measures(series, task, keys)))
    times = [_bench.timed(lambda: jax.block_until_ready(progress.progress_measures(series, task, keys)))
             for _ in range(3)]
    out = {k: np.asarray(v) for k, v in progress.progress_measures(series, task, keys).items()}
    chunked = progress.progress_measures(series, task, keys, chunk_size=9)
    for name, value in chunked.items():  # the memory-bounded path gives the same numbers
        np.testing.assert_allclose(value, out[name], rtol=1e-3, atol=1e-5, err_msg=name)
    fig = progress_figure(steps, out, keys, p=task.p,
                          title=f"grokking_quick ((a+b) mod {task.p}): progress measures, key frequencies "
                                f"{keys.tolist()}")
    save_figure(fig, images / "dissect_grokking_progress.png")
    last = int(np.argmax(steps))
    result = {
        "run": str(directory), "p": task.p, "checkpoints": len(steps), "steps": steps.tolist(),
        "key_frequencies": keys.tolist(),
        "final": {k: float(out[k][last]) for k in ("train_loss", "test_loss", "restricted_loss", "excluded_loss",
                                                    "frac_neurons_explained", "key_frac_neurons_explained",
                                                    "gini_embed", "gini_neuron_logit", "weight_norm")},
        "series": {k: v.tolist() for k, v in out.items() if v.ndim == 1},
        "seconds_first_call_with_compile": compile_and_run,
        "seconds_per_call_after_compile": times,
    }
    print(f"grokking: {len(steps)} checkpoints, key frequencies {keys.tolist()}")
    print("  final: " + ", ".join(f"{k} {v:.4g}" for k, v in result["final"].items()))
    print(f"  one vmapped call over the series: {_bench.median(times):.2f} s after compile "
          f"({_bench.spread(times)}); first call with compile {compile_and_run:.1f} s")
    return result


def _stream(model, tokens):
    """Residual stream at the embedding and after every layer: `[batch, 1 + layer, pos, d]`."""
    pre = probes.capture_site(model, tokens, "resid_pre")[:, :1]
    post = probes.capture_site(model, tokens, "resid_post")
    return jnp.concatenate([pre, post], axis=1)


def chess(directory: Path, images: Path, overrides: list[str], probe_steps: int) -> dict:
    run = _run("tasks/chess_quick.toml", directory, overrides)
    truth = run.task.facts("test")
    tokens, board = jnp.asarray(truth["tokens"]), truth["board"]
    is_train_game = probes.split_by_seed(tokens.shape[0], 0.2, seed=0)
    model, control = run.model, run.checkpoint(0)  # the control: this run's own random initialisation
    x, y, is_train = probes.sequence_examples(_stream(model, tokens), board, is_train_game)
    x_control, _, _ = probes.sequence_examples(_stream(control, tokens), board, is_train_game)
    kwargs = dict(steps=probe_steps, lr=1e-2, batch_size=512, key=jax.random.PRNGKey(0))
    fit = lambda: jax.block_until_ready(probes.probe_with_control(x, x_control, y, 13, is_train, **kwargs))
    seconds = _bench.timed(fit)
    trained, random_init = probes.probe_with_control(x, x_control, y, 13, is_train, **kwargs)
    # baseline without activations: the most common class of each square on the train games
    majority = np.array([np.bincount(y[is_train, s], minlength=13).argmax() for s in range(64)])
    chance = float((y[~is_train] == majority).mean())
    names = ["embed"] + [f"resid_post {i}" for i in range(x.shape[0] - 1)]
    fig = probe_figure(trained, random_init, names, truth["piece_classes"], chance=chance,
                       title=f"chess_quick: board-state probe (64 squares x 13 classes) on {int((~is_train).sum())} "
                             f"held-out positions")
    save_figure(fig, images / "dissect_chess_probes.png")
    result = {
        "run": str(directory), "examples_train": int(is_train.sum()), "examples_test": int((~is_train).sum()),
        "layers": names, "probe_settings": {k: v for k, v in kwargs.items() if k != "key"},
        "test_accuracy": np.asarray(trained.test_accuracy).tolist(),
        "train_accuracy": np.asarray(trained.train_accuracy).tolist(),
        "control_test_accuracy": np.asarray(random_init.test_accuracy).tolist(),
        "control_train_accuracy": np.asarray(random_init.train_accuracy).tolist(),
        "majority_class_accuracy": chance, "seconds_fit_with_compile": seconds,
    }
    print(f"chess: {result['examples_train']} train / {result['examples_test']} test positions; "
          f"majority-class baseline {chance:.4f}")
    for i, name in enumerate(names):
        print(f"  {name:14s} test {result['test_accuracy'][i]:.4f} (train {result['train_accuracy'][i]:.4f})  "
              f"control test {result['control_test_accuracy'][i]:.4f}")
    print(f"  probe fit ({2 * len(names)} layers in one vmapped call, incl. compile): {seconds:.1f} s")
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grok-dir", type=Path, default=Path("/tmp/toymi_figures/grok"))
    parser.add_argument("--chess-dir", type=Path, default=Path("/tmp/toymi_figures/chess"))
    parser.add_argument("--skip-chess", action="store_true")
    parser.add_argument("--out", type=Path, default=_bench.RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--images", type=Path, default=IMAGES, help="where the figures go (smoke: --out)")
    parser.add_argument("--smoke", action="store_true", help="tiny models trained into --out, probes fitted 30 steps")
    args = parser.parse_args(argv)
    grokking_overrides, chess_overrides, probe_steps = GROKKING, [], PROBE_STEPS
    if args.smoke:  # runs, game cache and figures of its own, all under --out
        args.grok_dir, args.chess_dir, args.images = args.out / "grok", args.out / "chess", args.out
        grokking_overrides = _bench.SMOKE_OVERRIDES["grokking_quick"]
        chess_overrides = [*SMOKE_CHESS, f"task.cache_dir={args.out / 'chess_games'}"]
        probe_steps = SMOKE_PROBE_STEPS
    args.images.mkdir(parents=True, exist_ok=True)
    with _bench.ForeignLoad() as load:
        payload = {"smoke": args.smoke, "grokking": grokking(args.grok_dir, args.images, grokking_overrides)}
        if not args.skip_chess:
            payload["chess"] = chess(args.chess_dir, args.images, chess_overrides, probe_steps)
    payload.update(versions=_bench.versions(), machine=_bench.machine(), foreign_load_cores=load.cores)
    print(f"results: {_bench.write_json('dissect_probes_progress', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
