"""Attribution graphs of a 2-layer addition model through transcoders trained per layer on every position, scored
against each answer digit's truth (`toymi.circuits.digit_graphs`): the graphs a GELU model needs, since its own
neurons cannot stand in.

    PYTHONPATH=. python benchmarks/digit_attribution.py --runs DIR   # the README table
    PYTHONPATH=. python benchmarks/digit_attribution.py --smoke      # an untrained 2-digit GELU model: a test

Models: `tasks/addition_quick.toml` as shipped (ReLU) and with `model.act_fn = "gelu"`, trained into `--runs`
(reused when there). Replacements: one transcoder per MLP layer (`layer_transcoders`: 1,024 latents, 2,000 steps,
trained on the layer's MLP at every position of fresh questions), and for the ReLU model its own neurons (exact).
Each is scored on the first 512 test questions, input nodes measured from zero and from the all-zeros question; the
columns are `digit_graphs.GRAPH_COLUMNS` after the model and replacement, with each layer's transcoder FVU (on 4,096
held-out MLP rows) and the error nodes' share of the edge mass.

Writes `DIR/digit_attribution.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import REPO_ROOT, runs_main  # noqa: E402

import toymi  # noqa: E402
from toymi.circuits.digit_graphs import BASELINES, GRAPH_COLUMNS, digit_graphs, graph_markdown  # noqa: E402
from toymi.circuits.frozen_transformer import own_neurons_exact  # noqa: E402
from toymi.circuits.replacement import own_neurons, trained_transcoders  # noqa: E402
from toymi.experiment.spec import Spec  # noqa: E402

SPEC = "tasks/addition_quick.toml"
MODELS = {"relu": [], "gelu": ["model.act_fn=gelu"]}


def replacements(model, task, smoke: bool):
    """`(label, transcoders, fvu per layer, seconds)`: trained transcoders, and the model's own neurons where they can
    be (`toymi.circuits.replacement`)."""
    out = [trained_transcoders(model, task, n_latents=32 if smoke else 1024, steps=20 if smoke else 2000,
                               batch_size=64 if smoke else 1024, seed=0)]
    if own_neurons_exact(model):
        out.append(own_neurons(model))
    return [("neurons (exact)" if r.exact else "transcoders", r.transcoders, list(r.fvu), r.seconds) for r in out]


def run(args, runs: Path) -> list[dict]:
    rows = []
    models = {"gelu": MODELS["gelu"]} if args.smoke else MODELS
    baselines = BASELINES[:1] if args.smoke else BASELINES
    for name, overrides in models.items():
        model, task = smoke_model() if args.smoke else trained(overrides, runs / f"addition_quick_{name}")
        tokens = task.test.tokens[:512]
        for label, layers, fvu, train_seconds in replacements(model, task, args.smoke):
            for baseline, scores in digit_graphs(model, task, layers, tokens, baselines).items():
                rows.append({"model": name, "replacement": label, "baseline": baseline, "fvu": fvu,
                             "train_seconds": train_seconds, **scores})
            print(summary(rows[-len(baselines):]), flush=True)
    return rows


def trained(overrides: list[str], directory: Path):
    run = toymi.train_or_load(Spec.load(REPO_ROOT / SPEC, overrides), directory)
    return run.model, run.task


def smoke_model():
    """An untrained 2-digit GELU model (nothing to train in a smoke run)."""
    from toymi.model.transformer import ModelConfig, Transformer
    from toymi.tasks.addition import Addition

    config = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=16, d_vocab=12, d_vocab_out=10, n_ctx=9,
                         act_fn="gelu", normalization="layernorm")
    return Transformer(config, jax.random.PRNGKey(0)), Addition(n_digits=2, eval_size=16)


def summary(rows: list[dict]) -> str:
    """The README table: one row per model × replacement × baseline."""
    header = f"| model | replacement | FVU per layer | {GRAPH_COLUMNS}"
    lines = [header, "|---" * header.count("|") + "|"]
    for r in rows:
        table = graph_markdown({r["baseline"]: r}).splitlines()[-1]
        lines.append(f"| {r['model']} | {r['replacement']} | {' / '.join(f'{v:.4f}' for v in r['fvu'])} {table}")
    return "\n".join(lines)


def main(argv=None) -> None:
    runs_main("digit_attribution", __doc__, "an untrained 2-digit GELU model, transcoders of 20 steps, input nodes "
              "from zero", run, summary, SPEC, argv)


if __name__ == "__main__":
    main()
