"""Reading a sweep's metrics: when each member crossed a threshold, and members averaged onto a grid of settings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def first_step_below(steps: np.ndarray, values: np.ndarray, threshold: float) -> np.ndarray:
    """The first logged step at which each member's value is below `threshold` (NaN where it never is).

    **Arguments:** `steps` `[eval]`; `values` `[eval, member]` (a `SweepRun`'s metric) or `[eval]`.
    **Returns:** `[member]` (or a scalar array for `[eval]` input).
    """
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    if values.shape[0] != steps.shape[0]:
        raise ValueError(f"values have {values.shape[0]} evaluations but steps has {steps.shape[0]}")
    below = values < threshold
    first = np.argmax(below, axis=0)
    return np.where(below.any(axis=0), steps[first], np.nan)


def grid_of(members: Sequence[dict], values: np.ndarray, x: str, y: str | None = None):
    """Members' values averaged over seeds onto the grid of settings `x` (and `y`).

    **Arguments:** `members` as `SweepRun.members`; `values` `[member]`; `x`, `y`: grid keys such as
    `"task.frac_train"`.

    **Returns:** `(xs, ys, mean [len(ys), len(xs)], n_finite [len(ys), len(xs)])`: the sorted settings, the mean
    over each cell's members that have a finite value (NaN if none), and how many those are.
    """
    values = np.asarray(values, float)
    for key in (x, y):
        if key is not None and any(key not in m for m in members):
            raise KeyError(f"{key!r} is not a setting of this sweep's members; they vary {sorted(members[0])}")
    xs = sorted({m[x] for m in members})
    ys = sorted({m[y] for m in members}) if y is not None else [None]
    total = np.zeros((len(ys), len(xs)))
    count = np.zeros((len(ys), len(xs)), int)
    for m, v in zip(members, values):
        if np.isfinite(v):
            cell = (ys.index(m[y]) if y is not None else 0, xs.index(m[x]))
            total[cell] += v
            count[cell] += 1
    with np.errstate(invalid="ignore"):
        return xs, ys, np.where(count > 0, total / np.maximum(count, 1), np.nan), count
