"""Attribution graphs with attention in the graph (`toymi.circuits.transformer_graph`) on the AND-gate
transformer, and on its hand-written solution (a control), scored against the gates' circuits and against the
model's own input ablations.

    PYTHONPATH=. python benchmarks/transformer_attribution.py          # the README table
    PYTHONPATH=. python benchmarks/transformer_attribution.py --smoke  # the solution alone, tiny: a test runs this

The model (`tasks/and_gates_transformer_quick.toml`, trained into `--runs`, reused when already there) reads feature
j at position j and answers all 45 gates at its last position. Its MLP is replaced by the model's own neurons
(exact: no error node) or by a transcoder or skip transcoder trained on the MLP at the readout position
(`readout_transcoder_setting`, as the transcoder-clustering benchmark trains them; one per seed). The control is
`and_gates_solution(task)` through its own neurons: each gate's neuron reads exactly its two inputs, and nothing
else reaches its logit, so its graphs must put all attribution on them. Attention
patterns, and each latent's value or gate, are frozen per example. Every example's graph is traced back from the
45 gate logits and averaged per gate over the examples where the gate is on, with the input nodes measured two ways:

- from zero (`baseline: none`), as circuit tracing measures token embeddings: a feature that is off is still a
  token at its position, so it has a node and edges;
- from the every-feature-off sequence (`baseline: all off`): a feature's node is its on-token's embedding minus
  its off-token's, zero when it is off (the residual-MLP graphs' convention, where an input of 0 has no edges).

Columns (means over the 45 gates, and over seeds):

- AUC mean / min: ROC AUC of ranking the 10 feature positions by mean |total attribution| (every path, the latents'
  gates frozen) against the gate's two inputs; with a baseline the mean is taken where the input is on as well
  (`given_present`: the gate's inputs are on whenever it is on, so presence alone would rank them first);
- gates at AUC 1: how many gates rank their two inputs strictly above every other position (with two true inputs,
  the same as "the top two are exactly the inputs");
- on true: the share of the mean |attribution| on the two inputs; direct: the same for the direct edges alone
  (residual stream and attention's OV, no latent);
- logit ablation: AUC / on true of the model's own input ablations (feature set to off, |Δ logit|) over the same
  examples; ρ: the Spearman correlation of the graph's position ranking with the ablation's, per gate;
- latent share / error share: the latents' and the error nodes' share of the edge mass (Σ |edge|) into the gate;
- FVU of the transcoder on the readout MLP's held-out stream; seconds: training it and summarising both
  baselines' graphs, halved (one half per row).

Also (`without_mlp` in the JSON): each model's eval metrics with its MLP zero-ablated, since an AND of two inputs is
linearly separable and attention alone can write much of it.

Writes `DIR/transformer_attribution.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _bench import RESULTS_DIR, machine, versions, write_json  # noqa: E402
from attribution_graphs import train_model  # noqa: E402

from toymi.circuits.planted import and_gates_solution  # noqa: E402
from toymi.circuits.attribution_scores import GRAPH_SEED  # noqa: E402
from toymi.circuits.gate_graphs import BASELINES, gate_graph_scores  # noqa: E402
from toymi.circuits.frozen_transformer import neuron_transcoders  # noqa: E402
from toymi.decompose.methods import METHODS  # noqa: E402
from toymi.decompose.scoring import EVAL_SEED  # noqa: E402
from toymi.decompose.settings import readout_transcoder_setting  # noqa: E402
from toymi.decompose.transcoder import fraction_variance_unexplained  # noqa: E402
from toymi.model.interventions import zero_ablate  # noqa: E402
from toymi.tasks.and_gates import AndGates  # noqa: E402

SPEC = "tasks/and_gates_transformer_quick.toml"


def run(args, runs: Path) -> tuple[list[dict], dict]:
    if args.smoke:  # nothing trained: the hand-written solution on 5 features, through its own neurons
        task = AndGates(n_features=5, feature_probability=0.5, n_eval=256)
        model = and_gates_solution(task)
        models = [("solution (control)", model, [("neurons (exact)", None)])]
    else:
        trained = train_model(SPEC, runs, False)
        task, model = trained.task, trained.model
        models = [("solution (control)", and_gates_solution(task), [("neurons (exact)", None)]),
                  ("trained", model, [("neurons (exact)", None)]
                   + [(kind, seed) for kind in ("transcoder", "skip transcoder") for seed in args.seeds])]
    batch = task.sample(jax.random.PRNGKey(GRAPH_SEED), args.examples)
    if not args.smoke:  # the transcoders' training stream and held-out set (no transcoder in --smoke)
        setting = readout_transcoder_setting(model, task, sae_steps=2000)
        held_out = setting.truth.io_sample(jax.random.PRNGKey(EVAL_SEED), 4096)
    rows, without_mlp = [], {}
    for label, model, jobs in models:
        without_mlp[label] = mlp_ablation(model, task)
        print(f"{label}: eval metrics clean and with the MLP zero-ablated: {without_mlp[label]}", flush=True)
        for kind, seed in jobs:
            t0 = time.perf_counter()
            replacement = neuron_transcoders(model) if seed is None else (METHODS[kind].train(setting, seed),)
            fvu = (0.0 if seed is None
                   else float(fraction_variance_unexplained(replacement[0].predict, *held_out)))
            scores = gate_graph_scores(model, task, replacement, batch)
            seconds = (time.perf_counter() - t0) / len(BASELINES)  # training and both baselines' graphs, shared
            for name in BASELINES:
                row = {"model": label, "replacement": kind, "seed": seed, "baseline": name, **scores[name],
                       "ablation": scores["ablation"], "fvu": fvu, "seconds": seconds}
                rows.append(row)
                print(line(label, kind, name, "-" if seed is None else seed, cells(row)), flush=True)
    return rows, without_mlp


def mlp_ablation(model, task) -> dict[str, dict[str, float]]:
    """The task's eval metrics (`gate_metrics` on its 4,096 eval inputs), clean and with `mlp_out` zero-ablated:
    how much of the gates attention and the residual stream get right without the MLP."""
    batch, evaluate = task.eval_batches()["eval"], eqx.filter_jit(task.evaluate)  # one program, not op by op
    return {name: {k: float(v) for k, v in evaluate(m, batch).items()}
            for name, m in (("clean", model), ("mlp_zero_ablated",
                                                model.with_interventions([zero_ablate("mlp_out", layer=0)])))}


def _mean(values) -> float:
    """The mean of the values that are not NaN; NaN if none is (without numpy's warning)."""
    values = np.asarray(values, np.float64)
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")


def cells(r: dict) -> list:
    auc = np.asarray(r["auc"], np.float64)
    return [_mean(auc), float(np.nanmin(auc)), int((auc == 1.0).sum()), _mean(r["on_true"]),
            _mean(r["on_true_direct"]), _mean(r["ablation"]["auc"]), _mean(r["ablation"]["on_true"]), _mean(r["rho"]),
            _mean(r["latent_share"]), _mean(r["error_share"]), r["fvu"], r["seconds"]]


def line(model: str, kind: str, baseline: str, first, v: list) -> str:
    def f(x: float) -> str:  # NaN: a share of nothing (the control has no direct edge into a gate)
        return "–" if np.isnan(x) else f"{x:.3f}"

    return (f"| {model} | {kind} | {baseline} | {first} | {f(v[0])} / {f(v[1])} | {v[2]:.3g} | {f(v[3])} | "
            f"{f(v[4])} | {f(v[5])} / {f(v[6])} | {f(v[7])} | {f(v[8])} | {f(v[9])} | {f(v[10])} | {v[11]:.1f} |")


HEADER = ("| model | replacement | baseline | {first} | AUC mean / min | gates at AUC 1 (of 45) | on true | on true, "
          "direct edges | logit ablation: AUC / on true | ρ graph vs ablation | latent share | error share | FVU | "
          "seconds |\n" + "|---" * 14 + "|")


def summary(rows: list[dict]) -> str:
    """One line per replacement and baseline, averaged over seeds (gate counts too)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["replacement"], r["baseline"]), []).append(r)
    out = [HEADER.format(first="seeds")]
    for (model, kind, baseline), rs in groups.items():
        values = np.mean([cells(r) for r in rs], axis=0).tolist()
        out.append(line(model, kind, baseline, len(rs), values))
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="no training: the hand-written solution on 5 features through its own neurons, 64 "
                         "examples")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--examples", type=int, default=None, help="inputs the graphs are averaged over (default 8192)")
    ap.add_argument("--runs", help="where the model is trained (reused when there); default a temporary folder")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    args.examples = args.examples or (64 if args.smoke else 8192)
    start = time.perf_counter()
    print(HEADER.format(first="seed"), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows, without_mlp = run(args, Path(args.runs) if args.runs else Path(tmp))
    print("\nMeans over seeds:\n" + summary(rows))
    path = write_json("transformer_attribution", {
        "benchmark": "transformer_attribution", "smoke": args.smoke, "spec": SPEC, "examples": args.examples,
        "rows": rows, "without_mlp": without_mlp, "total_runtime_s": time.perf_counter() - start, "machine": machine(),
        "versions": versions()},
        args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
