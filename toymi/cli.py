"""`toymi train SPEC`, `toymi sweep SPEC --grid ...`, `toymi plot RUN`, `toymi phase SWEEP` and `toymi view RUN`."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import traceback
from pathlib import Path

from toymi.errors import ConfigError, RunDirectoryError, ToymiError, TrainingInterrupted


def _start_distributed(args) -> None:
    """JAX's own multi-process runtime, before anything touches a device. Every process runs the same command;
    unset arguments come from the cluster (SLURM, Open MPI, TPU pods, Kubernetes) or JAX_COORDINATOR_ADDRESS."""
    import jax

    given = [f"--{k.replace('_', '-')}" for k in ("coordinator", "num_processes", "process_id")
             if getattr(args, k) is not None]
    if given and not args.distributed:
        raise ToymiError(f"{', '.join(given)} only apply with --distributed")
    if args.distributed:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)


def _train(args) -> int:
    import jax

    _start_distributed(args)
    from toymi.experiment.spec import Spec
    from toymi.experiment import train
    from toymi.train.sharding import ensemble_mesh
    from toymi.train.state import step_of

    spec = Spec.load(args.spec, args.set)
    out = Path(args.out) if args.out else Path("runs") / Path(args.spec).stem
    mesh = ensemble_mesh(jax.device_count()) if args.distributed else None  # data-parallel over every device
    if mesh is not None:
        print(f"data-parallel over {jax.device_count()} {jax.devices()[0].platform} devices in "
              f"{jax.process_count()} processes")
    try:
        state = train(spec, out, resume=args.resume, progress=not args.no_progress, mesh=mesh)
    except TrainingInterrupted as e:
        command = ["toymi", "train", args.spec, "--out", str(out), *[a for s in args.set for a in ("--set", s)],
                   "--resume"]
        print(f"toymi: {e}; resume with: {shlex.join(command)}", file=sys.stderr)
        return 128 + e.signal_number
    print(f"trained to step {step_of(state)}; run directory: {out}")
    if not args.no_plot and jax.process_index() == 0:
        _plot_run(out)
    return 0


def _plot_run(run_dir: Path) -> Path:
    from toymi.plot import save_figure, training_curves
    from toymi.train import metrics_log

    metrics = metrics_log.as_arrays(metrics_log.read(run_dir / "metrics.jsonl"))
    if not metrics:
        raise RunDirectoryError(f"{run_dir} has no metrics.jsonl to plot")
    (run_dir / "figures").mkdir(exist_ok=True)
    path = run_dir / "figures" / "training_curves.png"
    save_figure(training_curves(metrics, title=run_dir.name), path)
    print(f"wrote {path}")
    return path


def _plot(args) -> int:
    _plot_run(Path(args.run))
    if (Path(args.run) / "sweep.toml").exists():
        _plot_phase(Path(args.run), None, None, None, None)
    return 0


def _sweep(args) -> int:
    import jax

    _start_distributed(args)
    from toymi.experiment.sweep import Sweep
    from toymi.experiment.sweep_training import train_sweep
    from toymi.train.sharding import ensemble_mesh
    from toymi.train.state import step_of

    sweep = Sweep.from_args(args.spec, args.grid, seeds=args.seeds, overrides=args.set)
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.spec).stem}_sweep"
    n_members, n_devices = len(sweep.members), jax.device_count()
    mesh = None
    if n_devices > 1 and n_members % (n_devices // args.batch_shards) == 0:
        mesh = ensemble_mesh(args.batch_shards)
        print(f"{n_members} members over a {dict(mesh.shape)} mesh of {n_devices} {jax.devices()[0].platform} devices")
    elif n_devices > 1:
        print(f"{n_members} members on one device: not a multiple of the {n_devices // args.batch_shards} device "
              "groups")
    try:
        state = train_sweep(sweep, out, resume=args.resume, progress=not args.no_progress, mesh=mesh)
    except TrainingInterrupted as e:
        command = ["toymi", "sweep", args.spec, *[a for g in args.grid for a in ("--grid", g)], "--seeds",
                   str(args.seeds), *[a for s in args.set for a in ("--set", s)], "--out", str(out), "--resume"]
        print(f"toymi: {e}; resume with: {shlex.join(command)}", file=sys.stderr)
        return 128 + e.signal_number
    print(f"trained {n_members} members to step {step_of(state)}; sweep directory: {out}")
    if not args.no_plot and jax.process_index() == 0:
        _plot_run(out)
        _plot_phase(out, None, None, None, None)
    return 0


def _plot_phase(run_dir: Path, x: str | None, y: str | None, metric: str | None, below: float | None) -> Path | None:
    """Steps until `metric` first drops below `below`, averaged over seeds, on the grid of `x` × `y`. `metric` and
    `below` default to the task's `sweep_summary`; a task without a threshold gets the metric's final value."""
    import numpy as np

    from toymi.dissect.sweeps import first_step_below, grid_of
    from toymi.run import load_run
    from toymi.tasks import TASKS

    run = load_run(run_dir)
    varied = [k for k in run.sweep.grid if k != "train.seed"]
    if x is None:
        if not varied:
            print("no grid settings besides seeds: no phase diagram")
            return None
        x, y = varied[0], (varied[1] if len(varied) > 1 else None)
    metrics = run.metrics
    task_name = run.sweep.base_spec().task["name"]
    task_metric, task_below = TASKS[task_name].sweep_summary
    below = task_below if below is None else below
    if metric is None:
        metric = task_metric if task_metric in metrics else next(k for k in metrics if k.endswith("_loss"))
    if metric not in metrics:
        raise ConfigError(f"no metric {metric!r} in {run_dir}; have {sorted(k for k in metrics if k != 'step')}")
    if below is None:
        print(f"task {task_name!r}: its loss scale changes with the swept settings, so no steps-until-threshold "
              f"diagram unless asked (`toymi phase {run_dir} --below V`); the final {metric} instead:")
        values, label, name = metrics[metric][-1], f"final {metric}", f"final_{metric}"
    else:
        values = first_step_below(metrics["step"], metrics[metric], below)
        label, name = f"first step with {metric} < {below:g}", f"{metric}_below_{below:g}"
    xs, ys, grid, counts = grid_of(run.members, values, x, y)
    path = _save_phase(run_dir, name, xs, ys, grid, counts, x, y, label)
    fmt = (lambda v: f"{v:.4g}") if below is None else (lambda v: f"{np.round(v, 1)}")  # noqa: E731
    rows = [(f"{y}={yv}: " if y is not None else "") + ", ".join(f"{x}={xv} → {fmt(v)}" for xv, v in zip(xs, row))
            for yv, row in zip(ys, grid)]
    print("\n".join(rows))
    print(f"wrote {path}")
    return path


def _save_phase(run_dir: Path, name: str, xs, ys, grid, counts, x: str, y: str | None, label: str) -> Path:
    from toymi.plot import save_figure
    from toymi.plot.phase import phase_diagram

    fig = phase_diagram(xs, ys, grid, counts, xlabel=x, ylabel=y or "", value_label=label,
                        title=f"{run_dir.name}: {label}" + (" (— never)" if "<" in label else ""))
    path = run_dir / "figures" / f"phase_{name}.png"
    save_figure(fig, path)
    return path


def _phase(args) -> int:
    _plot_phase(Path(args.run), args.x, args.y, args.metric, args.below)
    return 0


def _dissect(args) -> int:
    from toymi.dissect.recipes import dissect_run

    path = dissect_run(args.run, args.out, smoke=args.smoke)
    print(f"wrote {path}")
    return 0


def _view(args) -> int:
    from toymi.views import serve, write_site

    extra = []
    if args.latents:
        from toymi.run import load_run
        from toymi.views.quick_sae import QuickSAE, latents_page

        extra = [latents_page(load_run(args.run), args.latents, QuickSAE(steps=args.sae_steps))]
    index = write_site(args.run, args.out, pages=args.pages.split(",") if args.pages else None, extra=extra)
    print(f"wrote {index}")
    if args.serve:
        serve(index.parent, args.port)
    return 0


def _distributed_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() first, "
                        f"{what} (multi-host: run the same command in every process)")
    parser.add_argument("--coordinator", help="with --distributed: process 0's host:port (default: from the cluster "
                        "or JAX_COORDINATOR_ADDRESS)")
    parser.add_argument("--num-processes", type=int, help="with --distributed: how many (default: from the cluster)")
    parser.add_argument("--process-id", type=int, help="with --distributed: this one's index (default: from the "
                        "cluster)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toymi", description="Train toy models on synthetic tasks and dissect them.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors in your input too")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a spec into a run directory")
    train.add_argument("spec", help="a TOML spec, e.g. tasks/grokking_quick.toml")
    train.add_argument("--out", help="run directory (default: runs/<spec name>)")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a spec value, e.g. --set train.steps=1000 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last intact checkpoint (or start it, if an interruption "
                       "left nothing to continue)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-plot", action="store_true", help="do not draw figures at the end")
    _distributed_arguments(train, "train data-parallel over every process's devices")
    train.set_defaults(func=_train)

    plot = commands.add_parser("plot", help="draw a run's training curves into RUN/figures/")
    plot.add_argument("run", help="a run directory")
    plot.set_defaults(func=_plot)

    sweep = commands.add_parser("sweep", help="train a grid of settings × seeds as one vmapped program")
    sweep.add_argument("spec", help="the base spec, e.g. tasks/grokking.toml")
    sweep.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2,...",
                       help="values of one setting, e.g. --grid train.weight_decay=0,0.3,1 (repeatable: a product)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per grid point (base seed + 0..N-1)")
    sweep.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a base spec value (repeatable)")
    sweep.add_argument("--out", help="sweep directory (default: runs/<spec name>_sweep)")
    sweep.add_argument("--resume", action="store_true", help="continue the sweep in --out from its last checkpoint")
    sweep.add_argument("--batch-shards", type=int, default=1,
                       help="devices each member's batch is split over (the rest split the members)")
    _distributed_arguments(sweep, "the members spread over every process's devices")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--no-plot", action="store_true", help="do not draw figures at the end")
    sweep.set_defaults(func=_sweep)

    dissect = commands.add_parser("dissect", help="run the task's default dissection into RUN/dissect/report.md")
    dissect.add_argument("run", help="a run directory")
    dissect.add_argument("--out", help="report directory (default: RUN/dissect)")
    dissect.add_argument("--smoke", action="store_true", help="smallest settings (seconds): for tests")
    dissect.set_defaults(func=_dissect)

    view = commands.add_parser("view", help="write a run's interactive pages (offline HTML) into RUN/view/")
    view.add_argument("run", help="a run directory")
    view.add_argument("--out", help="site directory (default: RUN/view)")
    view.add_argument("--pages", help="comma-separated pages from run, attention, circuits, or all (default: "
                      "run,attention; each is written where it applies)")
    view.add_argument("--latents", choices=["sae"], help="add a Latents page: train a small TopK SAE now on the "
                      "newest model's MLP neurons (last layer, last position; seconds) and show its latents")
    view.add_argument("--sae-steps", type=int, default=400, help="with --latents sae: training steps (default 400)")
    view.add_argument("--serve", action="store_true", help="then serve the site on localhost")
    view.add_argument("--port", type=int, default=8000, help="with --serve (default 8000; 0 picks a free one)")
    view.set_defaults(func=_view)

    phase = commands.add_parser("phase", help="draw a sweep's phase diagram: steps until a metric drops below a value")
    phase.add_argument("run", help="a sweep directory")
    phase.add_argument("--x", help="grid setting along x (default: the sweep's first)")
    phase.add_argument("--y", help="grid setting along y (default: the sweep's second)")
    phase.add_argument("--metric", help="a logged metric (default: test_loss)")
    phase.add_argument("--below", type=float, help="threshold (default: the task's, 0.1 for cross-entropy tasks, "
                       "Nanda et al.'s grokked; tasks without one, TMS and compressed computation, show final values)")
    phase.set_defaults(func=_phase)

    from toymi.decompose import cli as decompose_cli

    decompose = commands.add_parser("decompose", help="the recovery benchmark: SAEs and baselines × ground truths")
    decompose_cli.add_arguments(decompose)
    decompose.set_defaults(func=decompose_cli.main)

    from toymi.circuits import cli as circuits_cli

    circuits = commands.add_parser("circuits", help="circuit discovery on a planted circuit: AUC, CPR, CMD, drawings")
    circuits_cli.add_arguments(circuits)
    circuits.set_defaults(func=circuits_cli.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        # Training handles SIGINT/SIGTERM itself (it stops at a safe point and says how to resume); this is a signal
        # before the training loop started or after it ended, where nothing is half-written.
        print("toymi: stopped by a signal outside the training loop (nothing half-written); run the command again, "
              "with --resume if a run directory was made", file=sys.stderr)
        return 130
    except ToymiError as e:
        # Errors in the user's input or files: one clear line (the traceback only with --debug). Anything else is a
        # bug in toymi and keeps its traceback.
        if args.debug:
            traceback.print_exc()
        print(f"toymi: error: {e}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
