"""One accelerator check: what toymi does on whatever device JAX sees (a GPU or TPU when one is lent, else the CPU).

    PYTHONPATH=. python benchmarks/accelerator.py [--out DIR] [--only grokking,sweep,tms,sae,chess] [--smoke]

Sections (each timed on the same device, in one process; a failing section records its error and the rest run):

- `grokking`: `tasks/grokking.toml` (Nanda et al.: 40k full-batch epochs, exact float32 loss) trained through
  `toymi.experiment.train` into a run directory, wall time including compile; final losses, the first epoch with test
  loss < 0.1, and the test-loss spikes ("slingshots": an eval whose test loss is 10× the best before it, after
  grokking). `--grokking-losses exact,standard` also trains the float32 `log_softmax` loss for comparison.
- `sweep`: a 64-member grokking ensemble (members differ by seed; one vmapped program) against 64 runs one after
  another, both `--sweep-epochs` steps; "sequential" is 64 × one member's time in the same process (measured, not
  run 64 times).
- `tms`: the 20-instance TMS sparsity sweep against the ARENA-style PyTorch loop on the same device
  (`benchmarks/tms_sweep_speed.py`), skipped with the reason when torch is missing.
- `sae`: SAE training, 1 and 8 configurations vmapped (`benchmarks/sae_vmap_speed.py`).
- `chess`: `tasks/chess.toml`'s model and batch (8 layers, d_model 256, 128 games of 161 tokens): step time over
  `--chess-steps` steps after compile, on `--chess-games` generated games (generation timed apart).
- peak device memory after all sections (`memory_stats()`, where the backend reports it).

Writes `DIR/accelerator.json` after every section and `DIR/accelerator.md` (a table) at the end. `--smoke` runs every
section tiny on the CPU in seconds; the tests run it so the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

SECTIONS = ("grokking", "sweep", "tms", "sae", "chess")
# `--smoke`: the grokking and sweep sections on a tiny model of p = 23 (every code path, a fraction of the compile
# and run time of the spec's d_model 128, p = 113 model).
SMOKE_MODULAR = ["task.p=23", "model.d_model=32", "model.n_heads=2", "model.d_head=16", "model.d_mlp=64"]


def _say(*parts) -> None:
    print(*parts, flush=True)


def first_step_below(metrics: list[dict], key: str, threshold: float) -> int | None:
    return next((m["step"] for m in metrics if m.get(key, float("inf")) < threshold), None)


def slingshots(metrics: list[dict], after: int | None, factor: float = 10.0) -> list[tuple[int, int, float]]:
    """Test-loss spikes after step `after`: each a run of evals whose test loss is above `factor`× the lowest test
    loss seen before the run began, as (first step, last step, peak loss)."""
    if after is None:
        return []
    spikes, best = [], float("inf")
    for m in metrics:
        loss = m["test_loss"]
        if m["step"] > after and loss > factor * best:
            if spikes and spikes[-1][1] == previous:
                spikes[-1] = (spikes[-1][0], m["step"], max(spikes[-1][2], loss))
            else:
                spikes.append((m["step"], m["step"], loss))
        else:
            best = min(best, loss)
        previous = m["step"]
    return spikes


def grokking_progress(run_dir: Path, out: Path, name: str) -> dict:
    """Key frequencies, neurons explained and Nanda et al.'s three phases over the run's checkpoints (and their
    figure, `out/progress_<name>.png`)."""
    import numpy as np

    from toymi.analysis.modular.key_frequencies import neuron_key_frequencies
    from toymi.analysis.modular.progress import grokking_phases, progress_measures
    from toymi.plot.curves import save_figure
    from toymi.plot.progress import progress_figure
    from toymi.run import load_run

    run = load_run(run_dir)
    keys = neuron_key_frequencies(run.model, run.task)
    measures = {k: np.asarray(v) for k, v in
                progress_measures(run.checkpoint_series(), run.task, keys, chunk_size=8).items()}
    steps = np.asarray(run.steps)
    phases = grokking_phases(steps, measures, chance_loss=float(np.log(run.task.p)))
    save_figure(progress_figure(steps, measures, keys, p=run.task.p, title=f"progress measures ({name} loss)"),
                out / f"progress_{name}.png")
    return {"key_frequencies": [int(k) for k in keys], "phases": phases,
            "frac_neurons_explained": float(measures["frac_neurons_explained"][-1])}


def grokking(args, out: Path) -> dict:
    from toymi.experiment.spec import Spec
    from toymi.experiment import train
    from toymi.train.metrics_log import read as read_metrics

    rows = {}
    for loss in args.grokking_losses.split(","):
        overrides = [f"task.loss={loss}"] + ([f"train.steps={args.grokking_epochs}"] if args.grokking_epochs else [])
        if args.smoke:
            overrides += ["train.eval_every=10", "train.checkpoint_every=20", *SMOKE_MODULAR]
        spec = Spec.load(_bench.REPO_ROOT / "tasks" / "grokking.toml", overrides)
        with tempfile.TemporaryDirectory(prefix=f"grokking-{loss}-") as tmp:  # nothing left behind
            run_dir = Path(tmp) / "run"
            t0 = time.perf_counter()
            train(spec, run_dir, progress=False)
            wall = time.perf_counter() - t0
            metrics = read_metrics(run_dir / "metrics.jsonl")
            grokked = first_step_below(metrics, "test_loss", 0.1)
            final = metrics[-1]
            rows[loss] = {"epochs": spec.train.steps, "wall_s": wall, "final": final, "test_loss_below_0.1": grokked,
                          "slingshots": slingshots(metrics, grokked),
                          "test_loss_curve": [(m["step"], m["test_loss"]) for m in metrics]}
            if args.grokking_progress:
                rows[loss]["progress"] = grokking_progress(run_dir, out, loss)
            (out / f"grokking_{loss}_metrics.jsonl").write_text((run_dir / "metrics.jsonl").read_text())
            _say(f"grokking ({loss} loss): {spec.train.steps} epochs in {wall:.1f} s; final test loss "
                 f"{final['test_loss']:.3g}, test accuracy {final['test_accuracy']:.4f}; test loss < 0.1 at {grokked}; "
                 f"{len(rows[loss]['slingshots'])} slingshots")
    return rows


def sweep(args, out: Path) -> dict:
    import jax

    from toymi.experiment.spec import Spec
    from toymi.experiment.sweep import Sweep
    from toymi.experiment import make_optimizer
    from toymi.train import init_state, make_train_chunk
    from toymi.experiment.ensemble import init_ensemble
    from toymi.train.ensemble import make_ensemble_chunk

    spec_path = _bench.REPO_ROOT / "tasks" / args.sweep_spec
    overrides = SMOKE_MODULAR if args.smoke else []
    spec = Spec.load(spec_path, overrides)
    optimizer = make_optimizer(spec.train)
    task = spec.build_task()
    alone_state = init_state(spec.model, optimizer, 0)
    alone_chunk = make_train_chunk(optimizer, args.sweep_epochs)
    alone_first = _bench.timed(lambda: jax.block_until_ready(alone_chunk(alone_state, task)))
    alone = [_bench.timed(lambda: jax.block_until_ready(alone_chunk(alone_state, task))) for _ in range(3)]
    members = Sweep.from_args(spec_path, [], seeds=args.sweep_members, overrides=overrides)
    state, tasks, ens_optimizer = init_ensemble(members.member_specs())
    chunk = make_ensemble_chunk(ens_optimizer, args.sweep_epochs)
    ens_first = _bench.timed(lambda: jax.block_until_ready(chunk(state, tasks)))
    ens = [_bench.timed(lambda: jax.block_until_ready(chunk(state, tasks))) for _ in range(3)]
    n = args.sweep_members
    row = {"spec": args.sweep_spec, "members": n, "epochs": args.sweep_epochs,
           "one_member_s": _bench.median(alone), "one_member_compile_s": alone_first - _bench.median(alone),
           "ensemble_s": _bench.median(ens), "ensemble_compile_s": ens_first - _bench.median(ens),
           "sequential_s": n * _bench.median(alone)}
    row["speedup"] = row["sequential_s"] / row["ensemble_s"]
    _say(f"sweep: {n} members × {args.sweep_epochs} epochs in {row['ensemble_s']:.2f} s vs {n} sequential runs "
         f"{row['sequential_s']:.2f} s (one member {row['one_member_s']:.3f} s): {row['speedup']:.1f}×")
    return row


def tms(args, out: Path) -> dict:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return {"skipped": f"torch is not installed ({e})"}
    import tms_sweep_speed

    return tms_sweep_speed.main(["--rounds", str(args.tms_rounds), "--steps", str(args.tms_steps), "--device", "auto",
                                 "--out", str(out)])


def sae(args, out: Path) -> dict:
    from sae_vmap_speed import L1, SIZES, time_members

    from toymi.decompose.synthetic import sparse_dictionary
    from toymi.decompose.fit import SAEConfig

    name = next(k for k in SIZES if k.startswith("synthetic"))
    truth_kw, n_latents, batch = SIZES[name]
    if args.smoke:
        name, truth_kw, n_latents, batch = "smoke d=8, 32 latents", dict(n_features=16, d=8, n_active=2.0), 32, 64
    truth = sparse_dictionary(**truth_kw)
    cfg = SAEConfig("relu", n_latents=n_latents, steps=args.sae_steps, batch_size=batch, normalise_decoder=True)
    rows = {n: time_members(truth, cfg, n, 3, shared=False) for n in (1, len(L1))}
    result = {"size": name, "steps": args.sae_steps,
              **{f"{n}_members": {**r, "steps_per_s_per_member": n * args.sae_steps / r["run_s"]}
                 for n, r in rows.items()}}
    _say(f"sae ({name}): 1 config {rows[1]['run_s']:.2f} s, {len(L1)} configs {rows[len(L1)]['run_s']:.2f} s "
         f"for {args.sae_steps} steps")
    return result


def chess(args, out: Path) -> dict:
    import jax

    from toymi.experiment.spec import Spec
    from toymi.experiment import make_optimizer
    from toymi.train import init_state, make_train_chunk

    overrides = [f"task.n_games={args.chess_games}", f"task.n_test_games={max(args.chess_games // 10, 16)}"]
    if args.smoke:
        overrides += ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.d_head=16", "model.d_mlp=64",
                      "task.max_plies=10", "task.batch_size=8"]
    with tempfile.TemporaryDirectory(prefix="chess-cache-") as cache:  # the games, removed after timing
        spec = Spec.load(_bench.REPO_ROOT / "tasks" / "chess.toml", overrides + [f"task.cache_dir={cache}"])
        generation_s = _bench.timed(spec.build_task)
        task = spec.build_task()  # from the cache now
        optimizer = make_optimizer(spec.train)
        state = init_state(spec.model, optimizer, 0)
        chunk = make_train_chunk(optimizer, args.chess_steps)
        first = _bench.timed(lambda: jax.block_until_ready(chunk(state, task)))
        steady = [_bench.timed(lambda: jax.block_until_ready(chunk(state, task))) for _ in range(2)]
    step_ms = 1e3 * _bench.median(steady) / args.chess_steps
    m, t = spec.to_dict()["model"], spec.to_dict()["task"]
    row = {"model": f"{m['n_layers']} layers, d_model {m['d_model']}, batch {t['batch_size']}", "games": args.chess_games, "generation_s": generation_s, "steps_timed": args.chess_steps,
           "step_ms": step_ms, "compile_s": first - _bench.median(steady),
           "full_spec_estimate_s": step_ms / 1e3 * Spec.load(_bench.REPO_ROOT / "tasks" / "chess.toml").train.steps}
    _say(f"chess ({row['model']}): {step_ms:.1f} ms/step, compile {row['compile_s']:.1f} s;"
         f" generating {args.chess_games} games {generation_s:.1f} s")
    return row


def device_memory() -> dict:
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats:
        return {"peak_bytes_in_use": "n/a (the backend reports no memory stats)"}
    return {k: stats[k] for k in ("peak_bytes_in_use", "bytes_limit", "bytes_in_use") if k in stats}


def table(report: dict) -> str:
    lines = [f"Device: {report['device']} (jax {report['versions'].get('jax')})", "", "| check | result |", "|---|---|"]
    for loss, row in (report.get("grokking") or {}).items():
        if isinstance(row, dict) and "wall_s" in row:
            f = row["final"]
            lines.append(f"| grokking.toml, {row['epochs']} epochs, {loss} loss | {row['wall_s']:.1f} s with compile; "
                         f"final test loss {f['test_loss']:.3g} (train {f['train_loss']:.3g}), test accuracy "
                         f"{f['test_accuracy']:.2%}; test loss < 0.1 at epoch {row['test_loss_below_0.1']}; "
                         f"{len(row['slingshots'])} test-loss spikes > 10× its best after grokking |")
            if "progress" in row:
                pr = row["progress"]
                lines.append(f"| … its progress measures | key frequencies {pr['key_frequencies']}; "
                             f"{pr['frac_neurons_explained']:.0%} of neurons > 85% explained by one frequency; "
                             f"phases {pr['phases']} |")
    s = report.get("sweep") or {}
    if "speedup" in s:
        lines.append(f"| {s['members']}-member sweep vs {s['members']} sequential runs ({s['epochs']} epochs) | "
                     f"{s['ensemble_s']:.2f} s vs {s['sequential_s']:.2f} s: **{s['speedup']:.1f}×** "
                     f"(compile {s['ensemble_compile_s']:.1f} s) |")
    t = report.get("tms") or {}
    if "speedup" in t:
        lines.append(f"| TMS sweep (20 instances) vs ARENA-style PyTorch | {t['toymi_steps_per_s']:.0f} vs "
                     f"{t['torch_steps_per_s']:.0f} steps/s: **{t['speedup']:.2f}×** |")
    a = report.get("sae") or {}
    if "1_members" in a:
        one, many = a["1_members"], a[next(k for k in a if k.endswith("_members") and k != "1_members")]
        lines.append(f"| SAE ({a['size']}), {a['steps']} steps | 1 config {one['run_s']:.2f} s; 8 configs vmapped "
                     f"{many['run_s']:.2f} s ({many['steps_per_s_per_member']:.0f} steps/s per config) |")
    c = report.get("chess") or {}
    if "step_ms" in c:
        lines.append(f"| chess.toml step ({c['model']}) | {c['step_ms']:.1f} ms/step "
                     f"(20k steps ≈ {c['full_spec_estimate_s'] / 60:.1f} min); {c['games']} games generated in "
                     f"{c['generation_s']:.1f} s |")
    m = report.get("memory") or {}
    if "peak_bytes_in_use" in m:
        peak = m["peak_bytes_in_use"]
        lines.append(f"| peak device memory | {peak / 2**30:.2f} GiB |" if isinstance(peak, int) else
                     f"| peak device memory | {peak} |")
    for name in SECTIONS:
        if isinstance(report.get(name), dict) and "error" in report[name]:
            lines.append(f"| {name} | failed: {' '.join(report[name]['error'].split())} |")
    return "\n".join(lines) + "\n"


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(_bench.RESULTS_DIR / "accelerator"))
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--smoke", action="store_true", help="every section tiny, seconds on a CPU")
    p.add_argument("--grokking-losses", default="exact")
    p.add_argument("--grokking-epochs", type=int, default=None, help="default: the spec's 40k")
    p.add_argument("--grokking-progress", action="store_true",
                   help="also compute progress measures and phases over the run's checkpoints (and their figure)")
    p.add_argument("--sweep-spec", default="grokking.toml")
    p.add_argument("--sweep-members", type=int, default=64)
    p.add_argument("--sweep-epochs", type=int, default=1000)
    p.add_argument("--tms-rounds", type=int, default=3)
    p.add_argument("--tms-steps", type=int, default=200)
    p.add_argument("--sae-steps", type=int, default=2000)
    p.add_argument("--chess-games", type=int, default=2000)
    p.add_argument("--chess-steps", type=int, default=200)
    args = p.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.smoke:
        args.grokking_progress = True
        args.grokking_epochs, args.sweep_spec, args.sweep_members, args.sweep_epochs = 20, "grokking_quick.toml", 2, 5
        args.tms_rounds, args.tms_steps, args.sae_steps, args.chess_games, args.chess_steps = 1, 2, 5, 16, 2
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    import jax

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = jax.devices()[0]
    report = {"device": f"{device.platform}: {device.device_kind}", "n_devices": jax.device_count(),
              "machine": _bench.machine(), "versions": _bench.versions(), "args": vars(args)}
    _say(f"accelerator check on {report['device']} ({report['n_devices']} devices)")
    for name in args.only.split(","):
        t0 = time.perf_counter()
        try:
            report[name] = globals()[name](args, out)
        except Exception as e:  # one section's failure is recorded; the others still run
            traceback.print_exc()
            report[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
        _say(f"[{name}: {time.perf_counter() - t0:.1f} s]")
        report["memory"] = device_memory()
        (out / "accelerator.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "accelerator.md").write_text(table(report))
    _say(table(report))
    return report


if __name__ == "__main__":
    main()
