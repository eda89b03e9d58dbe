"""Attribution graphs through transcoders (circuit tracing) on the AND-gate and compressed-computation models,
scored against the circuits the tasks define and against the models' own input ablations.

    PYTHONPATH=. python benchmarks/attribution_graphs.py                    # the README table (quick specs)
    PYTHONPATH=. python benchmarks/attribution_graphs.py --and-gates-full   # plus tasks/and_gates.toml
    PYTHONPATH=. python benchmarks/attribution_graphs.py --deep             # compressed computation, 2 and 3 layers
    PYTHONPATH=. python benchmarks/attribution_graphs.py --smoke            # tiny: a test runs this

Per model (trained from its spec into `--runs`, reused when already there): the model's own MLP neurons as exact
transcoders (`neuron_transcoders`: no error node; the reference), then transcoders and skip transcoders trained
exactly as the decomposition benchmark trains them (`toymi.decompose.settings.*_setting(site="mlp_out",
layer=l)`, `METHODS[...].train`), one per seed and MLP layer: a deeper model (`--deep`: the 2- and 3-layer
compressed-computation models) gets a per-layer transcoder graph, with edges between layers' latents. Each
example's attribution graph (`toymi.circuits.attribution_graph`) is averaged per output over the examples where that
output matters (an AND gate: where it is on, i.e. both its inputs are on, the examples `input_ablation_effects`
averages over too; compressed computation: where the output's own feature is non-zero), then scored
(`toymi.circuits.attribution_scores`):

- AUC: per output, ROC AUC of ranking the inputs by mean |attribution| (all paths: latents + residual + skip)
  against its true inputs, the mean taken where the input is on as well (`given_present`: averaged over every
  example where a gate is on, its two inputs are always on and the others only sometimes, and ranking inputs by
  that alone already gives AUC 1: the "input alone" column); "via latents": the paths through the latents alone;
- on true: the share of the mean |attribution| (over every example where the output matters) on the true inputs;
- ablation: the same two numbers from zeroing each input in the model itself, on the raw outputs the graph
  attributes (logits) and on what the task reads (an AND gate's probability, `input_ablation_effects`, which
  saturates); ρ: the Spearman correlation of the graph's input ranking with the output ablation's;
- error share: the error node's share of the |edges| into each output (mean over outputs, and the worst);
- carriers: latents whose strongest incoming edges are exactly an output's true inputs and whose strongest outgoing
  edge goes to it (mean per output, and the fraction of outputs with at least one);
- FVU of the transcoder on the MLP's held-out output, L0 (both averaged over layers), and (in the JSON) the
  completeness gap (rounding only);
- deeper models (a second table): each layer's latents' share of the edge mass (sum of |edge|) into the outputs,
  the share of the edge mass into each later layer's latents that comes from earlier layers' latents, and the
  share of each output's attribution from its true input that goes through chains of latents (paths crossing a
  latent → latent edge: computation composed across layers).

Writes `DIR/attribution_graphs.json`, with `--deep` `DIR/attribution_graphs_deep.json` (default DIR:
benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from _bench import REPO_ROOT, RESULTS_DIR, machine, versions, write_json  # noqa: E402

import toymi  # noqa: E402
from toymi.analysis.and_gates import input_ablation_effects  # noqa: E402
from toymi.circuits.attribution_scores import (  # noqa: E402
    GRAPH_SEED, graph_scores, output_ablation_effects, summarise_graphs, where_outputs_matter,
)
from toymi.decompose.methods import METHODS  # noqa: E402
from toymi.decompose.scoring import EVAL_SEED  # noqa: E402
from toymi.decompose.settings import and_gates_setting, compressed_setting  # noqa: E402
from toymi.circuits.attribution_graph import neuron_transcoders  # noqa: E402
from toymi.decompose.transcoder import fraction_variance_unexplained  # noqa: E402
from toymi.experiment.spec import Spec  # noqa: E402


def models(args) -> list[tuple[str, str, int, list[int]]]:
    """(label, spec file, eval examples, seeds): enough examples that every output is averaged over ~100 or more.
    Compressed computation gets two seeds: its transcoders (400 latents on d_model 1000) take ~90 s each here."""
    if args.smoke:  # a one-layer and a two-layer model
        return [("and_gates_quick", "tasks/and_gates_quick.toml", 512, [0]),
                ("compressed_computation_2l", "tasks/compressed_computation_2l.toml", 1024, [0])]
    if args.deep:  # ~100 examples per output (feature probability 0.01); one seed: 2 or 3 transcoders per seed
        return [(label, f"tasks/{label}.toml", 10_000, args.seeds or [0])
                for label in ("compressed_computation_2l", "compressed_computation_3l")]
    out = [("and_gates_quick", "tasks/and_gates_quick.toml", 8192, [0, 1, 2]),
           ("compressed_computation_quick", "tasks/compressed_computation_quick.toml", 20_000, [0, 1])]
    if args.and_gates_full:
        out.append(("and_gates", "tasks/and_gates.toml", 32_768, [0]))
    return [(label, spec, n, args.seeds or seeds) for label, spec, n, seeds in out]


class Probe(NamedTuple):
    """What every transcoder of one model is scored on: the examples, the true input → output map
    `[n_outputs, n_features]`, where each output matters `[batch, n_outputs]`, and the model's own ablation
    effects, computed once per model (they do not depend on the transcoder): `effects` on what the task reads (an
    AND gate's probability: `input_ablation_effects`), `output_effects` on the raw outputs the graph attributes
    (logits; for compressed computation the same thing)."""

    x: jax.Array
    truth: np.ndarray
    where: jax.Array
    effects: np.ndarray
    output_effects: np.ndarray


def probe(model, task, batch, task_effects=None) -> Probe:
    """The task's circuit (`facts()["circuit"]`: gate k's two inputs; output i from input i), the examples where
    each output matters (`where_outputs_matter`: the gate is on; feature i is non-zero), and the ablations;
    `task_effects(task, model, batch)` on what the task reads, where that is not the outputs themselves."""
    where = where_outputs_matter(batch)
    output_effects = np.asarray(output_ablation_effects(model, batch.x, where))
    effects = output_effects if task_effects is None else np.asarray(task_effects(task, model, batch))
    return Probe(batch.x, task.facts()["circuit"], where, effects, output_effects)


# task name -> (its decomposition setting, its ablations on what the task reads, if not the outputs)
TASKS = {"and_gates": (and_gates_setting, input_ablation_effects),
         "compressed_computation": (compressed_setting, None)}


def score_row(model, transcoders, settings, p: Probe) -> dict:
    """The graphs' scores (`graph_scores`) and the task-level ablations, plus each layer's transcoder's FVU and L0 on
    held-out MLP inputs."""
    s = summarise_graphs(model, transcoders, p.x, p.where)
    held_out = [s.truth.io_sample(jax.random.PRNGKey(EVAL_SEED), 4096) for s in settings]
    return {
        **graph_scores(s, p.truth, p.output_effects, p.effects),
        "fvu": [float(fraction_variance_unexplained(tc.predict, x_in, y))
                for tc, (x_in, y) in zip(transcoders, held_out)],
        "l0": [float(np.mean(np.asarray(tc.encode(x_in)) > 0) * tc.n_latents)
               for tc, (x_in, _) in zip(transcoders, held_out)],
        "n_latents": [tc.n_latents for tc in transcoders]}


# --smoke: every model trained 50 steps; compressed computation also shrunk 5x (its transcoders dominate the time)
SMOKE_SIZES = {"tasks/compressed_computation_2l.toml": ["task.n_features=20", "task.n_eval=1000",
                                                        "model.d_model=200", "model.d_mlp=5"]}


# --smoke trains one kind per model, each kind once: every path runs, in half the time (the suite's budget)
SMOKE_KINDS = {"and_gates_quick": ("transcoder",), "compressed_computation_2l": ("skip transcoder",)}


def train_model(spec_file: str, runs: Path, smoke: bool):
    overrides = ([f"train.{k}=50" for k in ("steps", "eval_every", "checkpoint_every")]
                 + SMOKE_SIZES.get(spec_file, [])) if smoke else []
    spec = Spec.load(REPO_ROOT / spec_file, overrides)
    return toymi.train_or_load(spec, runs / Path(spec_file).stem)


def run(args, runs: Path) -> list[dict]:
    rows = []
    for label, spec_file, n_eval, seeds in models(args):
        t0 = time.perf_counter()
        trained = train_model(spec_file, runs, args.smoke)
        build, task_effects = TASKS[trained.spec.task["name"]]
        settings = [build(source=trained.directory, site="mlp_out", sae_steps=100 if args.smoke else 2000, layer=l)
                    for l in range(trained.model.config.n_layers)]
        p = probe(trained.model, trained.task, trained.task.sample(jax.random.PRNGKey(GRAPH_SEED), n_eval),
                  task_effects)
        print(f"{label}: model, truth and ablations ready in {time.perf_counter() - t0:.1f}s", flush=True)
        kinds = SMOKE_KINDS[label] if args.smoke else ("transcoder", "skip transcoder")
        jobs = [("neurons (exact)", None)] + [(kind, seed) for kind in kinds for seed in seeds]
        for kind, seed in jobs:
            t0 = time.perf_counter()
            transcoders = (neuron_transcoders(trained.model) if seed is None
                           else [METHODS[kind].train(s, seed) for s in settings])
            row = {"model": label, "transcoder": kind, "seed": seed, "layers": len(settings),
                   **score_row(trained.model, transcoders, settings, p), "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(row_line(row), flush=True)
    return rows


def _mean(values) -> float:
    return float(np.nanmean(np.asarray(values, np.float64)))


def _min(values) -> float:
    return float(np.nanmin(np.asarray(values, np.float64)))


def _max(values) -> float:
    return float(np.nanmax(np.asarray(values, np.float64)))


COLUMNS = ("AUC mean / min", "AUC via latents", "on true", "ablation AUC / on true: output (logit) · task "
           "(probability)", "ρ graph vs output ablation", "AUC not conditioned: graph / input alone",
           "error share mean / max", "carriers per output / outputs with one", "FVU", "L0", "seconds")


def header(first: str) -> str:
    names = ["model", "transcoder", first, *COLUMNS]
    return "| " + " | ".join(names) + " |\n" + "|---" * len(names) + "|"


def cells(r: dict) -> list[float]:
    """One row's numbers, in `line`'s order (per-output values reduced to their mean, min or max)."""
    c = np.asarray(r["carriers"])
    return [_mean(r["auc"]), _min(r["auc"]), _mean(r["auc_latents"]), _mean(r["on_true"]),
            _mean(r["output_ablation_auc"]), _mean(r["output_ablation_on_true"]), _mean(r["ablation_auc"]),
            _mean(r["ablation_on_true"]), _mean(r["rho"]), _mean(r["auc_unconditioned"]),
            _mean(r["auc_presence_baseline"]), _mean(r["error_share"]), _max(r["error_share"]), float(c.mean()),
            float((c > 0).mean()), _mean(r["fvu"]), _mean(r["l0"]), r["seconds"]]


def line(model: str, kind: str, first, v: list[float]) -> str:
    return (f"| {model} | {kind} | {first} | {v[0]:.3f} / {v[1]:.3f} | {v[2]:.3f} | {v[3]:.3f} | {v[4]:.3f} / "
            f"{v[5]:.3f} · {v[6]:.3f} / {v[7]:.3f} | {v[8]:.3f} | {v[9]:.3f} / {v[10]:.3f} | {v[11]:.3f} / "
            f"{v[12]:.3f} | {v[13]:.2f} / {v[14]:.2f} | {v[15]:.3f} | {v[16]:.1f} | {v[17]:.1f} |")


def row_line(r: dict) -> str:
    return line(r["model"], r["transcoder"], "—" if r["seed"] is None else r["seed"], cells(r))


def _groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["transcoder"]), []).append(r)
    return groups


# "edge mass": the sum of the edges' absolute values (a literal bar would break the markdown table)
DEPTH_COLUMNS = ("layers", "edge mass into the outputs from layer 0 / 1 / 2's latents", "from the residual stream "
                 "and skips", "from the error nodes", "cross-layer share of the edge mass into layer 1 / 2's latents",
                 "true input's attribution through chains of latents", "FVU per layer", "L0 per layer")


def depth_cells(r: dict) -> dict[str, list[float]]:
    """One deep row's per-layer numbers (per-output shares averaged over outputs)."""
    layers = np.nanmean(np.asarray(r["layer_share"], np.float64), axis=0)
    return {"layers": layers.tolist(), "rest": [1.0 - float(layers.sum()) - _mean(r["error_share"])],
            "error": [_mean(r["error_share"])], "cross": r["cross_layer_share"][1:],
            "chains": [_mean(r["chain_share"])], "fvu": r["fvu"], "l0": r["l0"]}


def depth_line(model: str, kind: str, seeds: int, c: dict[str, list[float]]) -> str:
    def join(values, fmt):
        return " / ".join(format(v, fmt) for v in values)

    return (f"| {model} | {kind} | {seeds} | {len(c['layers'])} | {join(c['layers'], '.3f')} | "
            f"{join(c['rest'], '.3f')} | {join(c['error'], '.3f')} | {join(c['cross'], '.3f')} | "
            f"{join(c['chains'], '.3f')} | "
            f"{join(c['fvu'], '.3f')} | {join(c['l0'], '.1f')} |")


def summary(rows: list[dict]) -> str:
    """One line per (model, transcoder): every number the mean over its seeds; for models of more than one layer
    a second table, per layer."""
    groups = _groups(rows)
    lines = [header("seeds")]
    for (model, kind), rs in groups.items():
        lines.append(line(model, kind, len(rs), np.mean([cells(r) for r in rs], axis=0).tolist()))
    deep = {key: rs for key, rs in groups.items() if rs[0].get("layers", 1) > 1}
    if deep:
        names = ["model", "transcoder", "seeds", *DEPTH_COLUMNS]
        lines += ["", "| " + " | ".join(names) + " |", "|---" * len(names) + "|"]
        for (model, kind), rs in deep.items():
            per_seed = [depth_cells(r) for r in rs]
            mean = {k: np.mean([c[k] for c in per_seed], axis=0).tolist() for k in per_seed[0]}
            lines.append(depth_line(model, kind, len(rs), mean))
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="models cut to 50 steps, 100 transcoder steps, one seed, one trained kind per model")
    ap.add_argument("--and-gates-full", action="store_true", help="also tasks/and_gates.toml (190 gates)")
    ap.add_argument("--deep", action="store_true",
                    help="instead: the 2- and 3-layer compressed-computation models (attribution_graphs_deep.json)")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=None,
                    help="e.g. 0,1,2 for every model (default: 3 on AND gates, 2 on compressed computation)")
    ap.add_argument("--runs", help="where the models are trained (reused when there); default a temporary folder")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    print(header("seed"), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args, Path(args.runs) if args.runs else Path(tmp))
    print("\nMeans over seeds:\n" + summary(rows))
    path = write_json("attribution_graphs_deep" if args.deep else "attribution_graphs", {
        "benchmark": "attribution_graphs", "deep": args.deep, "smoke": args.smoke, "rows": rows,
        "total_runtime_s": time.perf_counter() - start, "machine": machine(), "versions": versions()}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
