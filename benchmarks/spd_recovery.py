"""SPD on the TMS truths: MMCS / ML2R / alive subcomponents per seed and the success rate (MMCS ≥ 0.999 and ML2R in
[0.98, 1.03]), all seeds of one truth as one vmapped, compiled run. Also `compressed_1l`: the residual MLP of
`tasks/compressed_computation.toml` (100 features, 50 neurons), scored by the fraction of features with a `W_in`
subcomponent of their own (success: all of them); paper settings batch 2048, lr 2e-3, coefficient 1e-5, p = 2,
C = 100, 30k steps (pass `--steps 30000 --batch 2048 --lr 2e-3`); and `compressed_1l_clean`, the same on
`tasks/compressed_computation_clean.toml` (orthogonal embedding, `W_E W_Eᵀ = I`); `compressed_2l` and
`compressed_3l`, the 2-layer (2 × 25 neurons) and 3-layer (102 features, 3 × 17) models of
`tasks/compressed_computation_{2l,3l}.toml` (the reference's resid_mlp2 / resid_mlp3: C 400 / 500, coefficient 3e-5 /
2e-5, p 2, lr 1e-3, 20k / 100k steps of 2048), every layer's `W_in` and `W_out` decomposed; `--model-run RUN`
decomposes a run already trained from the spec. All report the target model's eval MSE next to the naive
solution's, the features with a `W_in` subcomponent of their own per layer and in any layer, and the agreement of
the neurons each feature's important subcomponents use with the model's own single-feature ablations
(`truths_compressed.neuron_agreement`). `and_gates`: the AND-gate residual MLP of `tasks/and_gates_quick.toml` (45 gates
of 10 inputs, 24 neurons), scored by the gates with `W_in` subcomponents of their own and what those read
(`toymi/decompose/parameters/truths_and_gates.py`; success: every gate), beside the inputs with a `W_in`
subcomponent of their own and the gates with an exclusive `W_out` subcomponent; C, coefficient and p from `--C`,
`--coef`, `--p` (default 100, 1e-3, 2; several comma-separated coefficients are one vmapped run of coefficients ×
seeds), no published number; the gate logits are compared as sigmoids (binary KL, the task's own comparison:
a BCE-trained model's logits are large and confident, and MSE on them charges changes no prediction sees;
`--output-loss mse` as the runs before it, with compressed computation's coefficient 1e-5);
`and_gates_transformer`: the same gates computed by the 1-layer transformer of
`tasks/and_gates_transformer_quick.toml`, scored at its readout position. `induction`: the 2-layer
attention-only model of `tasks/induction_quick.toml`, every attention matrix decomposed whole
(`truths_induction.py`: subcomponents confined to one head, those of the previous-token and induction heads,
K-composition; success: ≥ 90% of alive subcomponents in one head and the induction head with its own in all four
matrices); the reference's induction config is `--C 100 --coef 1e-2 --p 0.1 --faithfulness-coef 100 --batch 16` (C
64 by default here).

Paper settings (Bushnaq et al. 2025): 40k steps, batch 4096, Adam 1e-3 cosine; importance coefficient 3e-3 with
p = 1 (5-2), 1e-4 with p = 2 (40-10); C = 20 (5-2) and 200 (40-10). As the reference code (goodfire-ai/spd): TMS's
two uses of `W` share tied subcomponents (`--tie updates`; `--tie none` decomposes them independently, as toymi did
before), and the 200-step faithfulness warmup is AdamW with weight decay 0.1 (`--warmup-wd`).

    PYTHONPATH=. python benchmarks/spd_recovery.py --out DIR                 # paper settings, 5 seeds, TMS 5-2
    PYTHONPATH=. python benchmarks/spd_recovery.py --truths tms_5_2,tms_40_10,tms_5_2_id,tms_40_10_id --out DIR
    PYTHONPATH=. python benchmarks/spd_recovery.py --truths compressed_1l --steps 30000 --batch 2048 --lr 2e-3 \
        --seeds 1 --first-seed N --out DIR                                     # the paper's compressed run, seed N
    PYTHONPATH=. python benchmarks/spd_recovery.py --truths tms_40_10 --seeds 1 --checkpoint-dir CKPT --out DIR
                                           # in pieces of 2,000 steps, each reported and checkpointed: resumable
    PYTHONPATH=. python benchmarks/spd_recovery.py --truths tms_40_10 --seeds 1 --checkpoint-dir CKPT --out DIR --peek
                                           # that run's newest checkpoint scored while it goes on (trains nothing)
    PYTHONPATH=. python benchmarks/spd_recovery.py --smoke                   # seconds: tiny steps, 2 seeds

The 2026 version's options (off by default, `toymi/decompose/parameters/pgd.py`): `--pgd-coef` (adversarial
reconstruction, with `--pgd-steps`, `--pgd-step-size`) and `--frequency-coef` / `--frequency-p`.

Writes `DIR/spd_recovery.json` (default DIR: benchmarks/results). Its `spd_seconds` are this process's: a run resumed
from `--checkpoint-dir` leaves out the pieces before it (the log's piece lines say where it resumed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _bench import REPO_ROOT, RESULTS_DIR, machine, versions  # noqa: E402

from toymi.decompose.parameters.spd import (  # noqa: E402
    TIES, SPDConfig, init_params, spd_hyper, stack_spd_hypers, task_output, train_spd,
)
from toymi.decompose.parameters.components import INITS  # noqa: E402
from toymi.decompose.parameters.defaults import BINARY_KL_SPD, RESIDUAL_MLP_SPD  # noqa: E402
from toymi.decompose.parameters.importance import LOWER_IMPORTANCE  # noqa: E402
from toymi.decompose.parameters.losses import OUTPUT_LOSSES  # noqa: E402
from toymi.decompose.parameters.resumable import PieceDone, newest_checkpoint, train_spd_in_pieces  # noqa: E402
from toymi.decompose.parameters.targets import model_targets  # noqa: E402
from toymi.decompose.parameters.truths_tms import PUBLISHED, score_tms  # noqa: E402
from toymi.experiment.spec import Spec  # noqa: E402
from toymi.sealed import read_sealed, write_sealed  # noqa: E402
from toymi.train.optimizer import SCHEDULES  # noqa: E402

TRUTHS = {  # name: (n_features, d_hidden, hidden identity, C, importance coefficient, p)
    "tms_5_2": (5, 2, False, 20, 3e-3, 1.0),
    "tms_40_10": (40, 10, False, 200, 1e-4, 2.0),
    "tms_5_2_id": (5, 2, True, 20, 3e-3, 1.0),
    "tms_40_10_id": (40, 10, True, 200, 1e-4, 2.0),
}


def train_target(n_features: int, d_hidden: int, identity: bool, steps: int, seed: int = 0):
    """A TMS model trained here (feature probability 0.05, uniform importance, as the SPD paper's)."""
    from toymi.decompose.settings import trained
    from toymi.experiment.spec import Spec

    spec = Spec.from_dict({
        "task": {"name": "tms", "n_features": n_features, "feature_probability": 0.05, "batch_size": 1024,
                 "eval_size": 2048, "data_seed": seed},
        "model": {"kind": "tms", "d_hidden": d_hidden, "hidden_identity": identity},
        "train": {"steps": steps, "lr": 1e-2, "weight_decay": 0.0, "seed": seed, "eval_every": steps,
                  "checkpoint_every": steps},
    })
    return trained(spec)


COMPRESSED = {"compressed_1l": "compressed_computation", "compressed_1l_clean": "compressed_computation_clean",
              "compressed_2l": "compressed_computation_2l", "compressed_3l": "compressed_computation_3l"}
AND_GATES = {"and_gates": "and_gates_quick"}  # the model `toymi decompose --truths and_gates` scores SAEs on
AND_GATES_TRANSFORMER = {"and_gates_transformer": "and_gates_transformer_quick"}  # `toymi circuits`' AND-gate model
INDUCTION = {"induction": "induction_quick"}  # the 2-layer attention-only model of `toymi decompose --truths induction`
ALL_TRUTHS = {**TRUTHS, **COMPRESSED, **AND_GATES, **AND_GATES_TRANSFORMER, **INDUCTION}


def model_losses(model, task) -> dict[str, float]:
    """The target model's eval MSE and the naive one-neuron-per-feature solution's, on the task's eval set."""
    metrics = task.evaluate(model, task.eval_batches()["eval"])
    return {"model_loss": float(metrics["loss"]), "naive_loss": float(metrics["naive_loss"])}


def train_spec(spec_name: str, args, truth: str):
    """`(model, task, seconds)`: `tasks/<spec_name>.toml` trained here (50 steps with --smoke; its own steps, or
    --model-steps), or the one kept for `truth` by an earlier run with `--checkpoint-dir` (`kept_target`)."""
    from toymi.decompose.settings import trained

    t0 = time.perf_counter()
    if args.model_run:
        from toymi.run import load_run

        run = load_run(args.model_run)
        if run.spec.model != Spec.load(REPO_ROOT / "tasks" / f"{spec_name}.toml").model:
            raise SystemExit(f"--model-run {args.model_run} is not a run of tasks/{spec_name}.toml (its model differs)")
        return run.model, run.task, 0.0
    model, task = trained(REPO_ROOT / "tasks" / f"{spec_name}.toml", 50 if args.smoke else args.model_steps)
    return kept_target(truth, model, args), task, time.perf_counter() - t0


def run_compressed(name: str, args) -> dict:
    """SPD on a compressed-computation model (trained here from `tasks/<COMPRESSED[name]>.toml`, or `--model-run`);
    C, coefficient and p from `--C`, `--coef`, `--p` (default 100, 1e-5, 2: the paper's 1-layer settings)."""
    from toymi.decompose.parameters.truths_compressed import score_compressed

    model, task, model_seconds = train_spec(COMPRESSED[name], args, name)
    losses = model_losses(model, task)
    print(f"{name} target model: eval MSE {losses['model_loss']:.4g}, naive {losses['naive_loss']:.4g}", flush=True)
    result = decompose_members(name, model, task, args, model_seconds, score_compressed, args.C or 100,
                               args.coef or (1e-5,), args.p or (2.0,))
    return {"truth": name, "spec": COMPRESSED[name], **result, "model_seconds": model_seconds,
            "target_model": losses, "published": {"own_fraction": 1.0}}


def run_and_gates(name: str, args) -> dict:
    """SPD on the 1-layer AND-gate residual MLP of `tasks/<AND_GATES[name]>.toml` (trained here), scored by
    `truths_and_gates.score_and_gates`: gates with `W_in` subcomponents of their own, and what those read."""
    from toymi.decompose.parameters.truths_and_gates import score_and_gates

    model, task, model_seconds = train_spec(AND_GATES[name], args, name)
    accuracy = float(task.evaluate(model, task.eval_batches()["eval"])["accuracy"])
    print(f"{name} target model: eval gate accuracy {accuracy:.4f}", flush=True)
    result = decompose_members(name, model, task, args, model_seconds,
                               lambda m, params: score_and_gates(m, params, task.pairs),
                               *and_gates_defaults(task, model.kind, args))
    return {"truth": name, "spec": AND_GATES[name], **result, "model_seconds": model_seconds,
            "target_model": {"accuracy": accuracy}}


def run_and_gates_transformer(name: str, args) -> dict:
    """SPD on the 1-layer AND-gate transformer of `tasks/<AND_GATES_TRANSFORMER[name]>.toml` (trained here; its
    inputs are the task's feature vectors as tokens), every matrix decomposed, scored at the readout position by
    `truths_and_gates.score_and_gates_transformer`; the masked model's gate logits are compared with the target's at
    the readout only (independent sigmoids, not a next-token distribution). C, coefficient, p as `and_gates`."""
    from toymi.decompose.parameters.truths_and_gates import score_and_gates_transformer

    model, task, model_seconds = train_spec(AND_GATES_TRANSFORMER[name], args, name)
    accuracy = float(task.evaluate(model, task.eval_batches()["eval"])["accuracy"])
    print(f"{name} target model: eval gate accuracy {accuracy:.4f}", flush=True)
    result = decompose_members(name, model, task, args, model_seconds,
                               lambda m, params: score_and_gates_transformer(m, task, params),
                               *and_gates_defaults(task, model.kind, args),
                               sample=lambda key, n: task.model_inputs(task.sample(key, n), "transformer"))
    return {"truth": name, "spec": AND_GATES_TRANSFORMER[name], **result, "model_seconds": model_seconds,
            "target_model": {"accuracy": accuracy}}


def run_induction(name: str, args) -> dict:
    """SPD on the 2-layer attention-only induction model of `tasks/<INDUCTION[name]>.toml` (trained here), every
    attention matrix decomposed whole, scored by `truths_induction.score_induction` (subcomponents of the
    previous-token and induction heads, K-composition); defaults as the reference code's induction config (C 100,
    coefficient 1e-2, p 0.1, faithfulness coefficient 100, batch 16) except C = 64."""
    from toymi.decompose.parameters.truths_induction import key_heads, score_induction

    model, task, model_seconds = train_spec(INDUCTION[name], args, name)
    heads = key_heads(model, task)
    tokens = task.sample(jax.random.PRNGKey(10_000), 128).inputs
    print(f"{name} target model: previous-token head L0H{heads[0]}, induction head L1H{heads[1]}", flush=True)
    result = decompose_members(name, model, task, args, model_seconds,
                               lambda m, params: score_induction(m, params, tokens, heads),
                               args.C or 64, args.coef or (1e-2,), args.p or (0.1,))
    return {"truth": name, "spec": INDUCTION[name], **result, "model_seconds": model_seconds,
            "heads": {"previous_token": heads[0], "induction": heads[1]}}


def and_gates_defaults(task, kind: str, args) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """C, coefficients and p of an AND-gate truth: the command line's, else those of the distance its outputs are
    compared by: binary KL's (`BINARY_KL_SPD`: C 100, 1e-3, p 2; the task's own), or compressed computation's for
    `--output-loss mse` (C 100, 1e-5, p 2), whose scale is the logits'."""
    distance = task.output_comparison(kind)[0] if args.output_loss == "auto" else args.output_loss
    C, coef, p = BINARY_KL_SPD if distance == "binary_kl" else RESIDUAL_MLP_SPD
    return args.C or C, args.coef or (coef,), args.p or (p,)


def spd_config(args, C: int, steps: int, batch: int, **config) -> SPDConfig:
    """The `SPDConfig` of a truth's run: the command line's settings, then the truth's own (`config`) over them."""
    shared = {"lr": args.lr, "schedule": args.schedule, "init": args.init, "lower_importance": args.lower_importance,
              "tie": args.tie, "faithfulness_warmup_steps": args.warmup,
              "faithfulness_warmup_weight_decay": args.warmup_wd, "faithfulness_coef": args.faithfulness_coef,
              **options_2026(args)}
    return SPDConfig(C=C, steps=steps, batch_size=batch, **{**shared, **config})


def decompose_members(name: str, model, task, args, model_seconds: float, score, C: int = 100,
                      coefs=(1e-5,), ps=(2.0,), sample=None, **config) -> dict:
    """SPD on a model trained here (inputs: `sample`, default its task's own; `config`: more `SPDConfig` settings),
    every (coefficient, p) setting ×
    `args.seeds` seeds as one vmapped run: each member's `score(model, params)` (with its setting and seed), whether
    it reached the truth's bar (the scorer's `success`), the success rate, SPD's wall time and final losses."""
    if len(ps) not in (1, len(coefs)):
        raise SystemExit(f"give one p or one per coefficient: {len(coefs)} coefficients, {len(ps)} p")
    settings = [(c, ps[0] if len(ps) == 1 else ps[i]) for i, c in enumerate(coefs)]
    members = [(c, p, seed) for c, p in settings for seed in seed_range(args)]
    steps, batch = (10, 32) if args.smoke else (args.steps, args.batch)
    config = {**task_output(task, model.kind), **config}  # the task compares its outputs (`Task.output_comparison`)
    if args.output_loss != "auto":  # the command line's choice over the task's
        config["output_loss"] = args.output_loss
    cfg = spd_config(args, C, steps, batch, **config)
    t0 = time.perf_counter()
    run = fit(name, model, sample or task.sample, cfg, stack_spd_hypers([spd_hyper(c, p) for c, p, _ in members]),
              jnp.array([seed for _, _, seed in members]), args)
    jax.block_until_ready(run.losses["total"])
    spd_seconds = time.perf_counter() - t0
    per_seed = [{**score(model, run.member(i)), "coef": c, "p": p, "seed": seed}
                for i, (c, p, seed) in enumerate(members)]
    # The scorer's chance level: the same scores of an untrained decomposition (random subcomponents and
    # importance MLPs), so a number above it is SPD's doing.
    at_init = score(model, init_params(model, model_targets(model), cfg, jax.random.PRNGKey(0)))
    print(f"{name} untrained decomposition: " + ", ".join(f"{k} {v:.4g}" for k, v in at_init.items()), flush=True)
    for i, s in enumerate(per_seed):
        print(f"{name} member {i}: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items()), flush=True)
    success = float(np.mean([s["success"] for s in per_seed]))
    print(f"{name}: success rate {success:.2f} ({len(members)} members), SPD {spd_seconds:.1f} s (compile included), "
          f"target model {model_seconds:.1f} s", flush=True)
    final = {k: [float(x) for x in np.asarray(v[:, -1])] for k, v in run.losses.items()}
    return {"C": C, "output_loss": cfg.output_loss, "importance_coef": coefs[0] if len(coefs) == 1 else list(coefs),
            "p": settings[0][1] if len(settings) == 1 else [p for _, p in settings], "per_seed": per_seed,
            "at_init": at_init, "success_rate": success, "spd_seconds": spd_seconds, "final_losses": final,
            "steps_done": int(run.losses["total"].shape[1])}


def run_truth(name: str, args) -> dict:
    if name in COMPRESSED:
        return run_compressed(name, args)
    if name in AND_GATES:
        return run_and_gates(name, args)
    if name in INDUCTION:
        return run_induction(name, args)
    if name in AND_GATES_TRANSFORMER:
        return run_and_gates_transformer(name, args)
    n, d, identity, C, coef, p = TRUTHS[name]
    t0 = time.perf_counter()
    model, task = train_target(n, d, identity, args.model_steps or 10_000)
    model = kept_target(name, model, args)
    model_seconds = time.perf_counter() - t0
    cfg = spd_config(args, C, args.steps, args.batch, output_loss=args.output_loss)
    seeds = jnp.asarray(seed_range(args))
    t0 = time.perf_counter()
    run = fit(name, model, task.sample, cfg, stack_spd_hypers([spd_hyper(coef, p)] * args.seeds), seeds, args)
    jax.block_until_ready(run.losses["total"])
    spd_seconds = time.perf_counter() - t0
    per_seed = [{**score_tms(model, run.member(i), task.sample, jax.random.PRNGKey(10_000 + seed)), "seed": seed}
                for i, seed in enumerate(seed_range(args))]
    for s in per_seed:
        print(f"{name} seed {s['seed']}: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items()), flush=True)
    success = float(np.mean([s["success"] for s in per_seed]))
    print(f"{name}: success rate {success:.2f} ({args.seeds} seeds), SPD {spd_seconds:.1f} s "
          f"(compile included), target model {model_seconds:.1f} s", flush=True)
    final = {k: [float(x) for x in np.asarray(v[:, -1])] for k, v in run.losses.items()}
    return {"truth": name, "C": C, "importance_coef": coef, "p": p, "per_seed": per_seed, "success_rate": success,
            "spd_seconds": spd_seconds, "model_seconds": model_seconds, "final_losses": final,
            "steps_done": int(run.losses["total"].shape[1]),
            "published": PUBLISHED[name.replace("tms_", "tms ").replace("_", "-").replace("-id", " id")]}


def fit(name: str, model, sample, cfg: SPDConfig, hypers, seeds, args):
    """`train_spd`, or with `--checkpoint-dir` the same run in pieces of `--piece-steps`, each reported and
    checkpointed under `DIR/<truth>/` (`resumable.train_spd_in_pieces`): the same command resumes a stopped run."""
    if args.checkpoint_dir is None:
        return train_spd(model, sample, cfg, hypers, seeds)
    if args.peek:
        found = newest_checkpoint(model, sample, cfg, hypers, seeds, Path(args.checkpoint_dir) / name)
        if found is None:
            raise SystemExit(f"--peek: no checkpoint of this run in {Path(args.checkpoint_dir) / name}")
        print(f"{name}: the checkpoint at step {found[1]:,} of {cfg.steps:,}, scored as it is", flush=True)
        return found[0]

    def report(done: PieceDone) -> None:
        resumed = f", resumed at step {done.resumed_at:,}" if done.resumed_at else ""
        print(f"{name}: step {done.step:,} of {done.steps:,}, total loss " + ", ".join(
            f"{x:.4g}" for x in done.losses["total"]) + f" ({done.seconds:.0f} s in this process{resumed})", flush=True)

    return train_spd_in_pieces(model, sample, cfg, hypers, seeds, args.piece_steps,
                               Path(args.checkpoint_dir) / name, report)


def kept_target(name: str, model, args):
    """With `--checkpoint-dir`: the target model kept in `DIR/<truth>/` by an earlier run of the same truth and model
    steps (a resumed decomposition goes on with the model it began on, even where retraining it here, on another
    CPU, would differ in the last bits), else `model`, kept there for the next."""
    if args.checkpoint_dir is None:
        return model
    where, meta = Path(args.checkpoint_dir) / name, {"truth": name, "model_steps": args.model_steps}
    found = read_sealed(where, "target", lambda m: {k: m.get(k) for k in meta} == meta, lambda m: model)
    if found is None and args.peek:
        raise SystemExit(f"--peek: no target model kept in {where}: no run of {name} to score there")
    if found is None:
        write_sealed(where, "target", model, meta)
        return model
    print(f"{name}: the target model kept in {where}", flush=True)
    return found[0]


def seed_range(args) -> list[int]:
    """The members' seeds: `--seeds` of them from `--first-seed`. A member's run depends on its own seed only (its
    initialisation, data and masks), so five seeds can also run as five one-seed runs, one at a time (the same runs
    up to float rounding: XLA may compile a different batch of members differently)."""
    return list(range(args.first_seed, args.first_seed + args.seeds))


def options_2026(args) -> dict:
    """The 2026 version's loss options from the command line (`SPDConfig.pgd_*`, `frequency_*`; off by default)."""
    return {"pgd_coef": args.pgd_coef, "pgd_steps": args.pgd_steps, "pgd_step_size": args.pgd_step_size,
            "frequency_coef": args.frequency_coef, "frequency_p": args.frequency_p}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truths", default="tms_5_2",
                    help=f"comma-separated, from {', '.join(ALL_TRUTHS)}")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="the first member's seed (the others follow it)")
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200, help="faithfulness-only warmup steps (lr 1e-2)")
    ap.add_argument("--model-steps", type=int, default=None,
                    help="steps to train each target model (default: 10000 for TMS, the spec's own for compressed)")
    ap.add_argument("--model-run", default=None,
                    help="a trained run of the truth's spec to decompose instead of training one here (one "
                         "compressed or AND-gate truth)")
    ap.add_argument("--schedule", default="cosine", choices=SCHEDULES,
                    help="the learning rate's decay (quarter_cosine: the paper's code's)")
    ap.add_argument("--init", default="gaussian", choices=tuple(INITS),
                    help="how subcomponents start (overlapping: the paper's code's)")
    ap.add_argument("--lower-importance", default="hard_sigmoid", choices=tuple(LOWER_IMPORTANCE),
                    help="the masks' importance function (leaky_relu: the paper's code's)")
    ap.add_argument("--warmup-wd", type=float, default=0.1, help="the faithfulness warmup's AdamW weight decay")
    ap.add_argument("--tie", default="updates", choices=TIES,
                    help="how TMS's two uses of W share subcomponents (SPDConfig.tie; default: as the reference code)")
    ap.add_argument("--C", type=int, default=None,
                    help="subcomponents per matrix (and_gates: default 100; induction: 64)")
    ap.add_argument("--faithfulness-coef", type=float, default=1.0,
                    help="the faithfulness loss's weight (the reference's induction config: 100)")
    ap.add_argument("--coef", type=_floats, default=None,
                    help="importance-minimality coefficients, comma-separated: each one × --seeds members, one run "
                         "(and_gates: default 1e-3 with binary KL, 1e-5 with MSE)")
    ap.add_argument("--p", type=_floats, default=None,
                    help="importance-minimality exponents: one, or one per coefficient (and_gates; default 2)")
    ap.add_argument("--pgd-coef", type=float, default=0.0,
                    help="weight of the adversarial (PGD) reconstruction (0: off)")
    ap.add_argument("--pgd-steps", type=int, default=1)
    ap.add_argument("--pgd-step-size", type=float, default=0.1)
    ap.add_argument("--frequency-coef", type=float, default=0.0, help="β of the frequency-minimality term (0: off)")
    ap.add_argument("--frequency-p", type=float, default=2.0, help="p₂ of the frequency-minimality term")
    ap.add_argument("--output-loss", default="auto", choices=OUTPUT_LOSSES,
                    help="how the masked model's output is compared with the target's (SPDConfig.output_loss; auto: "
                         "the task's own, Task.output_comparison: MSE for TMS and compressed computation, KL for "
                         "induction, binary_kl (the gates' sigmoids) for the AND gates)")
    ap.add_argument("--checkpoint-dir", default=None,
                    help="train in pieces, reporting and checkpointing each under DIR/<truth>/ (with the target "
                         "model); the same command resumes a stopped run")
    ap.add_argument("--piece-steps", type=int, default=2000, help="steps per piece with --checkpoint-dir")
    ap.add_argument("--peek", action="store_true",
                    help="with --checkpoint-dir: score a run in progress at its newest checkpoint, training nothing "
                         "(writes spd_recovery_peek.json; each member's steps_done says how far it had got)")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--smoke", action="store_true", help="tiny run: 100 steps, batch 256, 2 seeds")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.seeds, args.model_steps, args.warmup = 100, 256, 2, 300, 20
    if args.peek and args.checkpoint_dir is None:
        raise SystemExit("--peek scores a run's newest checkpoint: give its --checkpoint-dir")
    truths = [t.strip() for t in args.truths.split(",") if t.strip()]
    unknown = [t for t in truths if t not in ALL_TRUTHS]
    if unknown:
        raise SystemExit(f"unknown truths {unknown}; expected some of {list(ALL_TRUTHS)}")
    start = time.perf_counter()
    results = [run_truth(t, args) for t in truths]
    payload = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": results,
               "wall_seconds": time.perf_counter() - start, "machine": machine(), "versions": versions(),
               "device": str(jax.devices()[0])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"spd_recovery{'_smoke' if args.smoke else ''}{'_peek' if args.peek else ''}.json"
    path.write_text(json.dumps(payload, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
