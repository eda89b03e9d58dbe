"""Regenerate every quick-spec number in README's task-zoo table and check it against the text.

    python benchmarks/readme_numbers.py              # every row: ~10 min on 2 quiet CPU cores (chess's games: +1 min)
    python benchmarks/readme_numbers.py --only tms_quick addition_quick
    python benchmarks/readme_numbers.py --smoke      # tms_quick alone (seconds): the parsing and the check

Each row runs README's command, `toymi train tasks/<name>.toml --out DIR --no-progress --no-plot` (in this process:
the function the CLI calls), and derives the row's numbers from the run directory (its metrics, checkpoints and the
task's ground truth). The README text of the row is the task-zoo line naming the spec in backticks; each number is
read from it by a pattern and compared at the precision README prints it (`99.71%` against the measured percentage rounded to 2 decimals; `7.5e-4` to 2
significant digits). The exit status is 1 if any number differs or a pattern no longer finds its number.
`VARIANTS` adds README paragraphs outside the table that run a quick spec with `--set` values (the demo with the exact
loss: `--only grokking_quick_exact`).

Runs are deterministic for a given library version and XLA CPU code (fixed seeds), so a difference means the
code's behaviour changed: restate the README number from this script's output, with the command beside it. The XLA
code depends on the CPU: with FMA (AVX2) or wider vectors, products and sums round differently, and a chaotic run
drifts (the demo passes 99% at step 800 instead of 750 on an AVX2 CPU; addition_quick's cascade accuracy moved by
0.7 points between two machines). So the script pins XLA to the AVX instruction set on x86-64 (`PORTABLE_XLA_FLAG`,
added to `XLA_FLAGS` before JAX starts), which every x86-64 CPU this project runs on has: the README rows are then
the same numbers on any of them. Runs of `toymi train` without the flag may differ from the table in these ways.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"([−\-]?[\d,]*\.?\d+(?:e[−\-]?\d+)?)"
PORTABLE_XLA_FLAG = "--xla_cpu_max_isa=AVX"  # no FMA, 256-bit vectors: the same XLA CPU code on every x86-64 CPU
# XLA flags the test suite sets to compile faster (tests/conftest.py), each changing how XLA generates CPU code
# (another optimisation level or the older elemental emitters round differently): README's numbers are defined at
# XLA's defaults, so runs of this script drop them.
COMPILE_SPEED_FLAGS = ("--xla_backend_optimization_level", "--xla_cpu_use_fusion_emitters",
                       "--xla_cpu_parallel_codegen_split_count")
X86_64 = ("x86_64", "AMD64")  # `platform.machine()` on x86-64 (Linux, Windows): where the flag applies


def portable_environ(environ=None) -> dict[str, str]:
    """`environ` (default: this process's) with `PORTABLE_XLA_FLAG` in `XLA_FLAGS`, on x86-64 (elsewhere unchanged),
    and without any of `COMPILE_SPEED_FLAGS` (the test suite's flags for fast compilation; README's numbers are
    defined at XLA's defaults, and other code generation rounds differently)."""
    env = dict(os.environ if environ is None else environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(COMPILE_SPEED_FLAGS)]
    if platform.machine() in X86_64 and not any("xla_cpu_max_isa" in f for f in flags):
        flags.append(PORTABLE_XLA_FLAG)
    if flags or "XLA_FLAGS" in env:
        env["XLA_FLAGS"] = " ".join(flags)
    return env


def run_script(args: list[str], environ=None) -> subprocess.CompletedProcess:
    """This script in a new process (where the pinned flag takes effect, since JAX starts there), for the tests."""
    env = {**portable_environ(environ), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, capture_output=True,
                          text=True, timeout=900)


def _first_step(metrics, key: str, above: float) -> float:
    """The first logged step at which `metrics[key]` exceeds `above`."""
    hits = np.flatnonzero(np.asarray(metrics[key]) > above)
    return float(metrics["step"][hits[0]]) if hits.size else float("nan")


def _grokking(run) -> dict[str, float]:
    m = run.metrics
    return {"start": 100 * m["test_accuracy"][0], "end": 100 * m["test_accuracy"][-1],
            "grok_step": _first_step(m, "test_accuracy", 0.99)}


def _addition(run) -> dict[str, float]:
    m = run.metrics
    return {"start": 100 * m["test_answer_accuracy"][0], "end": 100 * m["test_answer_accuracy"][-1],
            "cascade": 100 * m["cascade_answer_accuracy"][-1]}


def _induction(run) -> dict[str, float]:
    m = run.metrics
    return {"start": m["test_repeated_loss"][0], "end": m["test_repeated_loss"][-1],
            "accuracy": 100 * m["test_repeated_accuracy"][-1], "icl": m["test_icl_score"][-1]}


def _chess(run) -> dict[str, float]:
    from toymi.tasks.chess import legal_move_rate

    m, task = run.metrics, run.task
    n_games = min(200, task.n_test_games)  # as notebooks/05_chess.ipynb
    init, final = (legal_move_rate(run.checkpoint(step), task, n_games=n_games) for step in (0, run.steps[-1]))
    return {"start": m["test_loss"][0], "end": m["test_loss"][-1], "floor": m["test_uniform_legal_loss"][-1],
            "legal_init": 100 * init["legal_move_rate"], "legal_end": 100 * final["legal_move_rate"],
            "moves": final["n_moves"]}


def _and_gates(run) -> dict[str, float]:
    from toymi.analysis.and_gates import circuit_agreement, input_ablation_effects

    m = run.metrics
    effects = np.asarray(input_ablation_effects(run.task, run.model))
    on_circuit = circuit_agreement(effects, np.asarray(run.task.facts()["circuit"]))["on_circuit"]
    return {"start": 100 * m["eval_exact_match"][0], "end": 100 * m["eval_exact_match"][-1],
            "on_circuit": 100 * float(on_circuit)}


def _and_gates_neurons(run) -> dict[str, float]:
    """`_and_gates`, and how many neurons make each gate's AND (`neuron_interactions`, ≥ 10% of the largest), and in
    how many gates each neuron takes part: the residual MLP's row."""
    from toymi.analysis.and_gates import neuron_interactions, neurons_per_gate

    interactions = neuron_interactions(run.task, run.model)
    per_gate = np.asarray(neurons_per_gate(interactions))
    per_neuron = np.asarray(neurons_per_gate(np.asarray(interactions).T))
    return {**_and_gates(run), "neurons_min": per_gate.min(), "neurons_max": per_gate.max(),
            "gates_min": per_neuron.min(), "gates_max": per_neuron.max()}


def _tms(run) -> dict[str, float]:
    from toymi.analysis.tms import feature_dimensionality

    m = run.metrics
    dims = np.asarray(feature_dimensionality(np.asarray(run.model.W)))
    return {"start": m["test_loss_fraction"][0], "end": m["test_loss_fraction"][-1],
            "dim_min": dims.min(), "dim_max": dims.max()}


def _compressed(run) -> dict[str, float]:
    m = run.metrics
    return {"start": m["eval_loss"][0], "end": m["eval_loss"][-1],
            "ratio": m["eval_loss"][-1] / m["eval_naive_loss"][-1], "naive": m["eval_naive_loss"][-1]}


# spec -> (what to measure, {quantity: pattern with one group, matched in the spec's README row})
ROWS = {
    "grokking_quick": (_grokking, {"start": rf"test accuracy {NUMBER}% →", "end": rf"→ {NUMBER}%, grokking",
                                   "grok_step": rf"grokking at step {NUMBER}"}),
    "addition_quick": (_addition, {"start": rf"whole-answer accuracy {NUMBER}% →", "end": rf"→ {NUMBER}% \(uniform",
                                   "cascade": rf"{NUMBER}% on the carry-cascade set"}),
    "induction_quick": (_induction, {"start": rf"repeated-token loss {NUMBER} →", "end": rf"→ {NUMBER} \(accuracy",
                                     "accuracy": rf"\(accuracy {NUMBER}%\)", "icl": rf"learning score {NUMBER}"}),
    "chess_quick": (_chess, {"start": rf"test loss {NUMBER} →", "end": rf"→ {NUMBER} \(floor",
                             "floor": rf"random games: {NUMBER}\)", "legal_init": rf"legal {NUMBER}% \(random init\)",
                             "legal_end": rf"init\) → {NUMBER}%", "moves": rf"\({NUMBER} test moves\)"}),
    "and_gates_quick": (_and_gates_neurons, {
        "start": rf"all gates {NUMBER}% →", "end": rf"→ {NUMBER}%;",
        "on_circuit": rf"; {NUMBER}% of the input-ablation effect",
        "neurons_min": rf"AND made in {NUMBER}–", "neurons_max": rf"–{NUMBER} of the",
        "gates_min": rf"each neuron in {NUMBER}–", "gates_max": rf"–{NUMBER} gates"}),
    "and_gates_transformer_quick": (_and_gates, {"start": rf"exact match {NUMBER}% →", "end": rf"→ {NUMBER}%;",
                                                 "on_circuit": rf"; {NUMBER}% of the input-ablation effect"}),
    "tms_quick": (_tms, {"start": rf"all-zero loss {NUMBER} →", "end": rf"→ {NUMBER};",
                         "dim_min": rf"dimensionalities {NUMBER}–", "dim_max": rf"–{NUMBER} \(theory"}),
    "compressed_computation_quick": (_compressed, {"start": rf"MSE {NUMBER} →", "end": rf"→ {NUMBER},",
                                                   "ratio": rf", {NUMBER}× the naive",
                                                   "naive": rf"naive solution's {NUMBER}"}),
}


def _grokking_exact(run) -> dict[str, float]:
    m = run.metrics
    loss, steps = np.asarray(m["test_loss"]), np.asarray(m["step"])
    later = np.flatnonzero(steps >= 500)[1:]
    never_below = np.flatnonzero(np.asarray(m["test_accuracy"]) < 1.0)
    return {"grok_step": _first_step(m, "test_accuracy", 0.99), "final": float(loss[-1]),
            "all_right_from": float(steps[never_below[-1] + 1]) if never_below.size else float(steps[0]),
            "max_rise": 100 * float(np.max(loss[later] / loss[later - 1]) - 1)}


# README paragraphs that are not task-zoo rows: name -> (spec, its `--set` values, the paragraph's first words)
VARIANTS = {"grokking_quick_exact": ("grokking_quick", ("task.loss=exact",), "The spike at step")}
ROWS["grokking_quick_exact"] = (_grokking_exact, {
    "max_rise": rf"never rises by more than {NUMBER}%", "grok_step": rf"passes 99% at step {NUMBER}, as with float32",
    "all_right_from": rf"100% at every eval from step {NUMBER}", "final": rf"final test loss is {NUMBER} instead"})


def readme_row(readme: str, spec: str) -> str:
    """The task-zoo table line that names `spec` in backticks, as its third column ("learned: start → end"); for a
    `VARIANTS` name, the README paragraph that starts with its first words."""
    if spec in VARIANTS:
        start = readme.find(VARIANTS[spec][2])
        if start < 0:
            raise ValueError(f"README has no paragraph starting {VARIANTS[spec][2]!r} for {spec}")
        return readme[start: readme.find("\n\n", start)]
    for line in readme.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and cells[2].startswith(f"`{spec}`"):
            return cells[3]
    raise ValueError(f"README has no task-zoo row for `{spec}`")


def parse(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-"))


def agrees(printed: str, value: float) -> bool:
    """Whether `value`, rounded as README printed `printed`, reads the same."""
    printed = printed.replace(",", "").replace("−", "-")
    if "e" in printed:
        mantissa = printed.split("e")[0]
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return float(f"{value:.{digits}e}") == float(printed)
    digits = len(printed.split(".")[1]) if "." in printed else 0
    return round(float(value), digits) == float(printed)


def check_row(spec: str, row: str, measured: dict[str, float]) -> list[str]:
    """One line per quantity: README's number, the measured one, and whether they agree."""
    lines = []
    for name, pattern in ROWS[spec][1].items():
        found = re.search(pattern, row)
        if found is None:
            lines.append(f"MISSING {spec}.{name}: pattern {pattern!r} not in README row")
            continue
        ok = agrees(found.group(1), measured[name])
        verdict = "ok" if ok else "DIFFERS"
        lines.append(f"{verdict} {spec}.{name}: README {found.group(1)}, measured {measured[name]:.6g}")
    return lines


def train_quick(spec: str, out: Path, overrides: tuple[str, ...] = ()) -> None:
    """README's command for the row, `toymi train tasks/<spec>.toml --out OUT --no-progress --no-plot`, in this
    process (what the CLI calls); `overrides`: `--set` values, for tests that stop a constant-schedule run early."""
    from toymi.experiment.spec import Spec
    from toymi.experiment import train

    train(Spec.load(ROOT / "tasks" / f"{spec}.toml", list(overrides)), out, progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(ROWS), help="these rows only")
    parser.add_argument("--smoke", action="store_true", help="tms_quick alone (seconds)")
    parser.add_argument("--runs", help="directory for the runs (default: a temporary one); existing runs are reused")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a spec override for every run trained (tests stop a constant-schedule run early)")
    args = parser.parse_args(argv)
    os.environ.update(portable_environ())  # before JAX starts (it does at the first array, below)
    from toymi.run import load_run

    readme = (ROOT / "README.md").read_text()
    specs = ["tms_quick"] if args.smoke else (args.only or list(ROWS))
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(args.runs or scratch)
        lines = []
        for spec in specs:
            out = runs / spec
            if not (out / "metrics.jsonl").exists():
                base, overrides, _ = VARIANTS.get(spec, (spec, (), ""))
                train_quick(base, out, tuple(overrides) + tuple(args.set))
            lines += check_row(spec, readme_row(readme, spec), ROWS[spec][0](load_run(out)))
    print("\n".join(lines))
    return int(any(not line.startswith("ok") for line in lines))


if __name__ == "__main__":
    sys.exit(main())
