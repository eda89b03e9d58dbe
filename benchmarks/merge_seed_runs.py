"""Merge one-seed runs of `spd_recovery.py` (`--seeds 1 --first-seed N`) into one report, as if one run held them all.

    python benchmarks/merge_seed_runs.py OUT.json RUN.json [RUN.json ...]
    python benchmarks/merge_seed_runs.py --smoke    # split the committed compressed report into its runs, merge again

A run at the paper's settings takes ~41 min per seed on 2 CPU cores, so the seeds run one session at a time. Each
input is a run's `spd_recovery.json` or an earlier merge (OUT.json itself may be one of the inputs). The runs must
share every setting but the seeds; each seed may appear once. The merge lists `per_seed`, `spd_seconds` and
`final_losses` in seed order (`spd_seconds` one per run: a run times its members together), recomputes
`success_rate`, and keeps every run's own wall time, machine and losses in `separate_runs`, so nothing measured is
lost.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np

from toymi.train.integrity import write_atomically

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "benchmarks" / "results" / "spd" / "cpu_compressed_1l_30000steps_batch2048.json"  # one-seed runs merged
SEED_SETTINGS = ("seeds", "first_seed")  # what may differ between the runs merged
# per-truth fields that belong to the target model or the truth, the same in every run
SHARED_FIELDS = ("truth", "spec", "C", "importance_coef", "p", "published", "at_init", "target_model")


def _runs(report: dict) -> list[dict]:
    """A report's one-seed runs: its `separate_runs` if it is a merge, else itself."""
    if "separate_runs" in report:
        return report["separate_runs"]
    (result,) = report["results"]  # a merge keeps one truth's runs; several truths would need one list each
    return [{"first_seed": report["settings"]["first_seed"], "seeds": report["settings"]["seeds"],
             "spd_seconds": result["spd_seconds"], "wall_seconds": report["wall_seconds"],
             "final_losses": result["final_losses"], "machine": report["machine"]}]


def merge(reports: list[dict]) -> dict:
    """One report holding every seed of `reports` (each a run's JSON or an earlier merge), in seed order."""
    if not reports:
        raise ValueError("nothing to merge: give at least one run's JSON")
    settings = [{k: v for k, v in r["settings"].items() if k not in SEED_SETTINGS} for r in reports]
    differing = sorted({k for s in settings for k in s if s[k] != settings[0].get(k)})
    if differing:
        raise ValueError(f"the runs differ in {differing}: only runs of the same command with other seeds merge")
    results = [r["results"] for r in reports]
    if any(len(rs) != 1 for rs in results):
        raise ValueError("each run must score one truth (run spd_recovery.py with one --truths)")
    results = [rs[0] for rs in results]
    for field in SHARED_FIELDS:
        values = {json.dumps(r.get(field), sort_keys=True) for r in results}
        if len(values) != 1:
            raise ValueError(f"the runs disagree on {field!r}: {sorted(values)}")
    seeds = [m["seed"] for r in results for m in r["per_seed"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds appear twice: {sorted(seeds)}")
    order = np.argsort(seeds, kind="stable")
    per_seed = [m for r in results for m in r["per_seed"]]
    per_seed = [per_seed[i] for i in order]
    runs = sorted((run for r in reports for run in _runs(r)), key=lambda run: run["first_seed"])
    spd_seconds = [run["spd_seconds"] for run in runs]  # one per run (a run times all its members together)
    losses = {k: [x for r in results for x in r["final_losses"][k]] for k in results[0]["final_losses"]}
    losses = {k: [v[i] for i in order] for k, v in losses.items()}
    merged = {**results[0], "per_seed": per_seed, "spd_seconds": spd_seconds, "final_losses": losses,
              "success_rate": float(np.mean([m["success"] for m in per_seed]))}
    first = min(reports, key=lambda r: r["settings"]["first_seed"])
    command = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings[0].items()
                       if k in ("truths", "steps", "batch", "lr"))
    return {**first, "settings": {**first["settings"], "seeds": len(seeds), "first_seed": min(seeds)},
            "results": [merged], "separate_runs": runs,
            "note": f"{len(runs)} runs of the same command (spd_recovery.py {command} --seeds 1 --first-seed N), "
                    "merged by benchmarks/merge_seed_runs.py: per_seed, final_losses and spd_seconds list the runs in "
                    "seed order (spd_seconds one per run); wall_seconds, machine and versions are the first run's, "
                    "separate_runs has each run's"}


def split(merged: dict) -> list[dict]:
    """The one-seed reports that `merged` was merged from, as `spd_recovery.py --seeds 1` wrote them (the inverse of
    `merge`, for checking it)."""
    (result,) = merged["results"]
    seeds = [m["seed"] for m in result["per_seed"]]
    reports = []
    for run in merged["separate_runs"]:
        i = seeds.index(run["first_seed"])
        report = {k: copy.deepcopy(v) for k, v in merged.items() if k not in ("separate_runs", "note")}
        report["settings"] |= {"seeds": 1, "first_seed": run["first_seed"]}
        report["results"] = [{**copy.deepcopy(result), "per_seed": [copy.deepcopy(result["per_seed"][i])],
                              "spd_seconds": run["spd_seconds"],
                              "success_rate": result["per_seed"][i]["success"],
                              "final_losses": {k: [v[i]] for k, v in result["final_losses"].items()}}]
        reports.append(report | {"wall_seconds": run["wall_seconds"], "machine": run["machine"]})
    return reports


def smoke() -> int:
    """Split the committed example into its runs and merge them again (in reverse order): the same report."""
    committed = json.loads(EXAMPLE.read_text())
    again = merge(split(committed)[::-1])
    same = {k: v for k, v in again.items() if k != "note"} == {k: v for k, v in committed.items() if k != "note"}
    print(f"{EXAMPLE.name}: {len(committed['separate_runs'])} runs split and merged again: "
          f"{'the same report' if same else 'DIFFERENT'}")
    return 0 if same else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="the merged report to write (may also be one of the inputs)")
    ap.add_argument("runs", nargs="*", help="runs' spd_recovery.json files or earlier merges")
    ap.add_argument("--smoke", action="store_true", help=smoke.__doc__.splitlines()[0])
    args = ap.parse_args(argv)
    if args.smoke:
        return smoke()
    if args.out is None or not args.runs:
        ap.error("give OUT.json and at least one run's JSON")
    reports = [json.loads(Path(p).read_text()) for p in args.runs]
    merged = merge(reports)
    out = Path(args.out)
    write_atomically(out, json.dumps(merged, indent=1))  # never a half-written report, even when OUT was an input
    print(f"wrote {out}: seeds {[m['seed'] for m in merged['results'][0]['per_seed']]}, "
          f"success {merged['results'][0]['success_rate']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
