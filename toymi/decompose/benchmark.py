"""The recovery benchmark: decomposition methods × ground truths × seeds, scored with the same metrics.

Each method is an object (`toymi.decompose.methods.METHODS`: SAEs train all their seeds as one vmapped run, each
baseline is fitted once per seed on a fresh sample); every decomposition is scored on a held-out sample of the
truth's activations (`toymi.decompose.scoring.evaluate`), and the per-seed numbers are summarised as mean ± std
(`summarise`) into a markdown table (`markdown_table`).

A `Setting` holds what the methods need to know about one truth (dictionary size, how many features are active,
optimiser budget); `toymi.decompose.settings.default_settings` builds the benchmark's truths: Sharkey et al.'s
synthetic dictionary and TMS 40→10 (a TMS model trained here, its `GroundTruth` from
`toymi.decompose.truths.tms_truth`), and the other trained models' truths. Any other `GroundTruth` runs the same way
through `run_benchmark`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from toymi.decompose.methods import DEFAULT_METHODS, METHODS, Method, Setting
from toymi.decompose.scoring import EVAL_SEED
from toymi.errors import ConfigError

__all__ = ["DEFAULT_METHODS", "METHODS", "Setting", "markdown_table", "run_benchmark", "summarise"]


def summarise(per_seed: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """metric → (mean, std over seeds)."""
    keys = sorted({k for row in per_seed for k in row})
    return {k: (float(np.mean([r[k] for r in per_seed if k in r])), float(np.std([r[k] for r in per_seed if k in r])))
            for k in keys}


def run_benchmark(settings: Sequence[Setting], methods: Sequence[str | Method] = DEFAULT_METHODS,
                  seeds: Sequence[int] = (0, 1, 2), log: Callable[[str], None] = print,
                  on_row: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Every method (a name in `METHODS`, or any `Method`) on every setting; one result row per (truth, method) with
    per-seed metrics, summary and time. `on_row(rows so far)` runs after each row (the command saves partial
    results with it)."""
    unknown = [m for m in methods if isinstance(m, str) and m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    chosen = [METHODS[m] if isinstance(m, str) else m for m in methods]
    rows = []
    for s in settings:
        x_eval = np.asarray(s.truth.sample(jax.random.PRNGKey(EVAL_SEED), s.n_eval), np.float64)
        for method in chosen:
            t0 = time.perf_counter()
            per_seed = method.run(s, list(seeds), x_eval)
            if not per_seed:
                continue
            seconds = time.perf_counter() - t0
            summary = summarise(per_seed)
            rows.append({"truth": s.truth.name, "method": method.name, "seeds": list(seeds)[:len(per_seed)],
                         "per_seed": per_seed, "summary": summary, "seconds": seconds,
                         "published": s.truth.published_for(method.name)})
            mm = summary.get("mmcs", (math.nan, 0))[0]
            log(f"{s.truth.name:>20} | {method.name:<18} | MMCS {mm:.3f} | {seconds:6.1f}s")
            if on_row is not None:
                on_row(rows)
    return rows


COLUMNS = (("mmcs", "MMCS truth→learned"), ("mmcs_learned", "MMCS learned→truth"), ("mcc", "MCC (Hungarian)"),
           ("frac_0.9", "frac > 0.9"), ("ml2r", "ML2R"), ("variance_explained", "var. explained"), ("l0", "L0"),
           ("dead_fraction", "dead frac."), ("loss_recovered", "loss recovered"))


def _cell(summary: dict, key: str) -> str:
    if key not in summary:
        return "—"
    mean, std = summary[key]
    digits = 1 if key == "l0" else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per (method, truth): mean ± std over seeds of every metric, the seeds that reached the truth's bar
    (`success`: a success rate, which none of the anchors reports), and the published number. A truth with its own
    scorer (`GroundTruth.score`: AND gates, modular addition, induction) gets a second table of those numbers
    below."""
    head = ["method", "ground truth", *[title for _, title in COLUMNS], "success", "seeds", "published"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        published = ", ".join(f"{k} {v:g}" for k, v in r["published"].items()) or "—"
        cells = [r["method"], r["truth"], *[_cell(r["summary"], key) for key, _ in COLUMNS], _success(r),
                 str(len(r["per_seed"])), published]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + "".join(_scorer_table(truth, [r for r in rows if r["truth"] == truth])
                                             for truth in dict.fromkeys(r["truth"] for r in rows))


def _success(row: dict) -> str:
    """Seeds at the truth's bar out of those scored (`success`: MMCS ≥ `scoring.MMCS_BAR` for activation methods,
    the truth's own bar for SPD); "—" where the truth has none."""
    marks = [s["success"] for s in row["per_seed"] if "success" in s]
    return f"{sum(marks):.0f}/{len(marks)}" if marks else "—"


_NOT_SCORER = {key for key, _ in COLUMNS} | {"mmcs_learned", "frac_0.9", "loss_recovered_mean", "success"}


def _scorer_table(truth: str, rows: list[dict]) -> str:
    """The truth's own scores (its rows' metrics outside the main table's), one line per method; "" when it has
    none."""
    keys = list(dict.fromkeys(k for r in rows for k in r["summary"] if k not in _NOT_SCORER))
    keys.sort(key=lambda k: k.startswith("random_"))  # the method's own scores first, the random reference after
    if not keys:
        return ""
    lines = [f"\n**{truth}**: the truth's own scores\n", "| method | " + " | ".join(keys) + " |",
             "|" + "---|" * (len(keys) + 1)]
    lines += ["| " + " | ".join([r["method"], *[_cell(r["summary"], k) for k in keys]]) + " |" for r in rows]
    return "\n".join(lines) + "\n"
