"""Transcoder clustering (Heimersheim's test of circuits in superposition) on the AND-gate and compressed-computation
models: cluster each decomposition's units by co-activation and score the clusters against the circuits the task
states (`task.facts()["circuit"]`: a gate reads its two inputs; a compressed-computation output its own feature).

    PYTHONPATH=. python benchmarks/coactivation_clusters.py                    # the README table (and_gates_quick)
    PYTHONPATH=. python benchmarks/coactivation_clusters.py --and-gates-full   # plus tasks/and_gates.toml
    PYTHONPATH=. python benchmarks/coactivation_clusters.py --compressed       # compressed computation alone
    PYTHONPATH=. python benchmarks/coactivation_clusters.py --transformer      # the AND-gate transformer alone
    PYTHONPATH=. python benchmarks/coactivation_clusters.py --and-gates-full --output-loss binary_kl \
        --spd 1e-3:2,3e-4:2                                                     # SPD comparing the gates' sigmoids
    PYTHONPATH=. python benchmarks/coactivation_clusters.py --smoke            # tiny: a test runs this

Per model (trained from its spec into `--runs`, reused when already there), the units, each active or not on every
example of a fresh sample of the task's inputs:

- `circuit (control)`: the task's own circuit as units, one per input (on when the input is non-zero) and one per
  circuit of several inputs (a gate: on when both its inputs are): what a decomposition that found the circuits
  would give; it must score 1;
- `neurons`: the model's own MLP neurons (for the AND-gate transformer, all units are read at its readout position,
  where its MLP computes the gates);
- `transcoder`, `skip transcoder`: trained exactly as the decomposition benchmark trains them
  (`and_gates_setting` / `compressed_setting` with `site="mlp_out"`, `METHODS[...].train`), one per seed;
- `SPD`: `W_in` and `W_out` subcomponents together, active where their causal importance is ≥ 0.5 (the threshold
  `score_and_gates` uses), trained as the benchmark's row of that model (the setting's `ParameterTruth`, 5,000
  × 512; the transformer: every matrix, as `spd_recovery.py --truths and_gates_transformer`, 1,500 × 64, its MLP's
  subcomponents read at the readout position) at each `--spd` (coefficient, p), one vmapped run, the outputs
  compared by `--output-loss` (default MSE, as README's rows were run; `binary_kl` is the AND gates' own).

A continuous unit (neuron, latent) is active where it exceeds `--floor` (0.1) of its largest value on the sample.
`toymi.circuits.coactivation` clusters the units (`anchored_clusters`, `--tau` 0.9), reads each unit's conditions
from the inputs, and scores: circuits recovered (one cluster holds a unit conditioned on exactly the circuit's
inputs, a unit of each of its inputs, and nothing conditioned on other inputs; for a one-input circuit its input's
unit alone), circuits with such a whole unit at all (a gate: an interaction unit), inputs with a unit of their
own, coverage (per input, the fraction of the examples where it is on on which some unit of its own is active,
averaged over inputs), clusters per recovered circuit (1: one cluster each; more: its units never fire together),
and the link: per gate with an interaction unit, the largest fraction of that unit's examples on which some one
unit of input a is active (and the same for b; the smaller of the two), averaged over those gates. A gate is
recovered at any `tau` at or below its link, so the link says how far each decomposition is from the test's bar.

Writes `DIR/coactivation_clusters.json` (default DIR: benchmarks/results; `_compressed`, `_transformer` and
`_binary_kl` (`--output-loss binary_kl`) added to the name where those are asked for).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _bench import machine, versions, write_json, RESULTS_DIR  # noqa: E402
from attribution_graphs import TASKS, train_model  # noqa: E402

from toymi.circuits.coactivation import (  # noqa: E402
    anchored_clusters, coactivation, conditions, input_coverage, input_links, score_circuit_clusters,
)
from toymi.decompose.methods import METHODS  # noqa: E402
from toymi.decompose.parameters.evaluate import causal_importances  # noqa: E402
from toymi.decompose.parameters.losses import OUTPUT_LOSSES  # noqa: E402
from toymi.decompose.parameters.spd import SPDConfig, spd_hyper, stack_spd_hypers, train_spd  # noqa: E402
from toymi.decompose.parameters.targets import model_targets  # noqa: E402
from toymi.decompose.settings import readout_transcoder_setting  # noqa: E402
from toymi.decompose.truths.sampling import captured_rows, mlp_io_sampler  # noqa: E402

SAMPLE_SEED = 0xC0AC  # the examples co-activation is counted on (not any training stream)


def models(args) -> list[tuple[str, str, int, list[int]]]:
    """(label, spec, examples, seeds): enough examples that every gate is on ~1,000 times or more, and every
    compressed-computation feature ~650 times (probability 0.01)."""
    if args.smoke:
        return [("and_gates_quick", "tasks/and_gates_quick.toml", 2048, [0])]
    if args.compressed:  # its transcoders (400 latents on d_model 1000) take ~90 s each here: two seeds
        return [("compressed_computation", "tasks/compressed_computation.toml", 65_536, args.seeds or [0, 1])]
    if args.transformer:
        return [("and_gates_transformer_quick", "tasks/and_gates_transformer_quick.toml", 16_384,
                 args.seeds or [0, 1, 2])]
    out = [("and_gates_quick", "tasks/and_gates_quick.toml", 16_384, args.seeds or [0, 1, 2])]
    if args.and_gates_full:
        out.append(("and_gates", "tasks/and_gates.toml", 65_536, args.seeds or [0]))
    return out


def above_floor(values, floor: float) -> np.ndarray:
    """Active where a unit exceeds `floor` of its largest value on the sample (never where that is ≤ 0)."""
    values = np.asarray(values)
    return values > np.maximum(floor * values.max(0, keepdims=True), 0)


def score(active: np.ndarray, x_on: np.ndarray, circuits: np.ndarray, tau: float) -> dict:
    p = coactivation(active)
    unit_conditions = conditions(active, x_on, tau)
    links = input_links(p, unit_conditions, circuits)
    return {**score_circuit_clusters(anchored_clusters(p, tau), unit_conditions, circuits),
            "link": float(np.nanmean(links)) if np.isfinite(links).any() else float("nan"),
            "coverage": float(np.nanmean(input_coverage(active, x_on, unit_conditions))),
            "units_alive": float((active.sum(0) >= 10).sum()), "n_units": float(active.shape[1]),
            "mean_active": float(active.sum(1).mean())}


TRANSFORMER_SPD_STEPS = (1500, 64)  # the README's AND-gate transformer SPD rows (spd_recovery.py): 2 CPU cores


def transformer_spd_config(task, smoke: bool, output_loss: str = "mse") -> SPDConfig:
    """SPD on the AND-gate transformer as `spd_recovery.py --truths and_gates_transformer` runs it: every matrix,
    the gate logits at the readout compared by `output_loss` (MSE as README's rows), 1,500 × 64 (the residual
    MLP's C = 100, Adam 1e-3 cosine, a 200-step faithfulness warmup)."""
    steps, batch = (60, 64) if smoke else TRANSFORMER_SPD_STEPS
    return SPDConfig(C=100, steps=steps, batch_size=batch, lr=1e-3, schedule="cosine",
                     faithfulness_warmup_steps=20 if smoke else 200, faithfulness_warmup_weight_decay=0.1,
                     output_loss=output_loss, output_positions=(task.n_features,))


def spd_units(trained, build, batch, args, readout) -> list[tuple[str, int, np.ndarray]]:
    """`("SPD coef c, p q", seed, active)` per `--spd` setting and seed (`--spd-seeds` of each): the MLP's
    `W_in` and `W_out` subcomponents (at the readout position for a transformer), active at causal importance
    ≥ 0.5; `--spd-steps` and `--spd-C` replace the benchmark row's step count and subcomponents per matrix."""
    model, task = trained.model, trained.task
    inputs = task.model_inputs(batch, model.kind)
    if readout:
        sample, config = (lambda key, n: task.model_inputs(task.sample(key, n), "transformer"),
                          transformer_spd_config(task, args.smoke, args.output_loss))
    else:
        truth = build(source=trained.directory, quick=args.smoke).parameters
        model, sample = truth.model, truth.sample
        config = dataclasses.replace(truth.config, output_loss=args.output_loss)
    config = dataclasses.replace(config, steps=args.spd_steps or config.steps, C=args.spd_C or config.C)
    # Setting i's r-th member has seed i + r·(settings): with one seed per setting, each setting's own (as README's
    # runs were made), and no two members share a seed.
    members = [(c, p, i + r * len(args.spd)) for i, (c, p) in enumerate(args.spd) for r in range(args.spd_seeds)]
    hypers = stack_spd_hypers([spd_hyper(c, p) for c, p, _ in members])
    run = train_spd(model, sample, config, hypers, jnp.array([seed for _, _, seed in members]))
    targets = model_targets(model)
    # A residual MLP's targets are its MLP's matrices; a transformer's MLP among its attention's.
    mlp = [i for i, t in enumerate(targets) if t.name in ("W_in.0", "W_out.0")] if readout else range(len(targets))
    out = []
    for i, (c, p, seed) in enumerate(members):
        g = causal_importances(run.member(i), model, targets, inputs)
        g = [np.asarray(g[j])[:, readout[0]] if readout else np.asarray(g[j]) for j in mlp]
        out.append((f"SPD coef {c:g}, p {p:g}", seed, np.concatenate(g, axis=1) >= 0.5))
    return out


def run(args, runs: Path) -> list[dict]:
    rows = []
    for label, spec_file, n, seeds in models(args):
        trained = train_model(spec_file, runs, args.smoke)
        model, task = trained.model, trained.task
        circuits = np.asarray(task.facts()["circuit"], bool)  # [circuit, input]
        batch = task.sample(jax.random.PRNGKey(SAMPLE_SEED), n)
        x_on = np.asarray(batch.x) != 0
        readout = (task.n_features,) if model.kind == "transformer" else None  # where a transformer answers
        io = mlp_io_sampler(model, task, 0, readout)
        x_in = io(jax.random.PRNGKey(SAMPLE_SEED), n)[0]  # the same examples: `task.sample` with the same key
        neurons = captured_rows(model, task.model_inputs(batch, model.kind), "mlp_post", 0, readout)
        build = TASKS[trained.spec.task["name"]][0]
        sae_steps = 100 if args.smoke else 2000
        setting = (readout_transcoder_setting(model, task, sae_steps) if readout else
                   build(source=trained.directory, site="mlp_out", sae_steps=sae_steps))
        several = circuits[circuits.sum(1) > 1]  # circuits of several inputs (gates) get a unit of their own
        whole_on = (x_on.astype(np.int32) @ several.T) == several.sum(1)
        jobs = [("circuit (control)", None, lambda: np.concatenate([x_on, whole_on], axis=1)),
                ("neurons", None, lambda: above_floor(neurons, args.floor))]
        jobs += [(kind, seed, lambda kind=kind, seed=seed: above_floor(METHODS[kind].train(setting, seed).encode(x_in),
                                                                        args.floor))
                 for kind in ("transcoder", "skip transcoder") for seed in seeds]
        for kind, seed, units in jobs:
            t0 = time.perf_counter()
            rows.append({"model": label, "units": kind, "seed": seed,
                         **score(units(), x_on, circuits, args.tau), "seconds": time.perf_counter() - t0})
            print(row_line(rows[-1]), flush=True)
        if args.spd:
            t0 = time.perf_counter()
            units = spd_units(trained, build, batch, args, readout)
            for kind, seed, active in units:
                rows.append({"model": label, "units": kind, "seed": seed, **score(active, x_on, circuits, args.tau),
                             "seconds": (time.perf_counter() - t0) / len(units)})
                print(row_line(rows[-1]), flush=True)
    return rows


KEYS = ("circuits_recovered", "circuits_with_unit", "inputs_with_unit", "coverage", "link", "clusters",
        "mean_cluster_size", "units_alive", "mean_active", "seconds")
HEADER = ("| model | units | {first} | circuits recovered | circuits with a whole unit | inputs with a unit | "
          "coverage | link | clusters | mean size | units alive | active per example | seconds |\n" + "|---" * 13 + "|")


def line(model: str, units: str, first, values) -> str:
    v = dict(zip(KEYS, values))
    return (f"| {model} | {units} | {first} | {v['circuits_recovered']:.3f} | {v['circuits_with_unit']:.3f} | "
            f"{v['inputs_with_unit']:.3f} | {v['coverage']:.3f} | {v['link']:.3f} | {v['clusters']:.0f} | "
            f"{v['mean_cluster_size']:.2f} | {v['units_alive']:.0f} | {v['mean_active']:.1f} | {v['seconds']:.1f} |")


def row_line(r: dict) -> str:
    return line(r["model"], r["units"], "—" if r["seed"] is None else r["seed"], [r[k] for k in KEYS])


def summary(rows: list[dict]) -> str:
    """One line per (model, units): every number the mean over its seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["units"]), []).append(r)
    lines = [HEADER.format(first="seeds")]
    for (model, units), rs in groups.items():
        values = np.array([[r[k] for k in KEYS] for r in rs], np.float64)
        seen = ~np.isnan(values).all(0)  # a column NaN for every seed (no unit to measure) stays NaN
        lines.append(line(model, units, len(rs), np.where(seen, np.nansum(values, 0) / np.maximum(
            (~np.isnan(values)).sum(0), 1), np.nan)))
    return "\n".join(lines)


def _settings(text: str) -> list[tuple[float, float]]:
    """`1e-5:2,1e-2:1` → [(1e-5, 2.0), (1e-2, 1.0)]; "" → none."""
    return [(float(c), float(p)) for c, p in (item.split(":") for item in text.split(",") if item)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="model cut to 50 steps, 100 transcoder steps, one seed")
    ap.add_argument("--and-gates-full", action="store_true", help="also tasks/and_gates.toml (190 gates)")
    ap.add_argument("--compressed", action="store_true", help="tasks/compressed_computation.toml instead (writes "
                    "coactivation_clusters_compressed.json)")
    ap.add_argument("--transformer", action="store_true", help="tasks/and_gates_transformer_quick.toml instead, at "
                    "its readout position (writes coactivation_clusters_transformer.json)")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=None,
                    help="transcoder seeds, e.g. 0,1,2 (default: 3 on and_gates_quick, 1 on and_gates)")
    ap.add_argument("--spd", type=_settings, default=_settings("1e-5:2,1e-2:1"),
                    help="SPD (coefficient:p) settings, one member each; '' for none (default 1e-5:2,1e-2:1: the "
                         "benchmark's and the sweep's sparsest)")
    ap.add_argument("--spd-seeds", type=int, default=1, help="SPD seeds per --spd setting (default 1)")
    ap.add_argument("--spd-steps", type=int, default=None,
                    help="SPD steps (default: the decomposition benchmark's row of the model, 5,000; the transformer "
                         "1,500)")
    ap.add_argument("--spd-C", type=int, default=None,
                    help="SPD subcomponents per matrix (default: the benchmark row's, 100)")
    ap.add_argument("--output-loss", default="mse", choices=OUTPUT_LOSSES,
                    help="how SPD compares the masked model's outputs with the target's (SPDConfig.output_loss; "
                         "default mse, as README's rows were run; binary_kl: the AND gates' own comparison)")
    ap.add_argument("--tau", type=float, default=0.9, help="co-activation and condition threshold (default 0.9)")
    ap.add_argument("--floor", type=float, default=0.1, help="a neuron or latent is active above this fraction of "
                    "its largest value (default 0.1)")
    ap.add_argument("--runs", help="where the models are trained (reused when there); default a temporary folder")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    print(HEADER.format(first="seed"), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args, Path(args.runs) if args.runs else Path(tmp))
    print("\nMeans over seeds:\n" + summary(rows))
    suffix = "_compressed" if args.compressed else "_transformer" if args.transformer else ""
    suffix += "" if args.output_loss == "mse" else f"_{args.output_loss}"  # README's MSE rows keep their files
    suffix += (f"_spd{args.spd_steps}steps" if args.spd_steps else "") + (f"_C{args.spd_C}" if args.spd_C else "")
    suffix += f"_{args.spd_seeds}seeds" if args.spd_seeds > 1 else ""
    path = write_json("coactivation_clusters" + suffix, {
        "benchmark": "coactivation_clusters", "smoke": args.smoke, "tau": args.tau, "floor": args.floor,
        "spd": args.spd, "spd_seeds": args.spd_seeds, "spd_steps": args.spd_steps, "spd_C": args.spd_C,
        "output_loss": args.output_loss,
        "rows": rows, "total_runtime_s": time.perf_counter() - start,
        "machine": machine(), "versions": versions()}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
