"""`metrics.jsonl`: one JSON object per evaluation, appended as training goes.

A kill mid-append can leave a torn last line: reading skips it with a warning naming the file, and a resume cuts it
back (with every row after the checkpoint it resumes from). A bad line anywhere else is an error naming file and line.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from toymi.errors import RunDirectoryError


class TornMetricsLine(UserWarning):
    """The last line of a metrics.jsonl was cut off by an interruption."""


def append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read(path: str | Path, *, missing_ok: bool = True) -> list[dict]:
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise RunDirectoryError(f"{path} does not exist: the run has no metrics")
    lines = path.read_text(errors="replace").split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):  # no newline after it: an append cut short
                warnings.warn(f"{path}: ignoring a torn last line {number} ({len(line)} characters, cut off by an "
                              "interruption); a resume removes it", TornMetricsLine, stacklevel=2)
                continue
            raise RunDirectoryError(f"{path} line {number} is not valid JSON ({e})") from None
    return rows


def truncate_after(path: Path, step: int) -> list[dict]:
    """Keep rows up to `step` (resuming from a checkpoint at `step` recomputes the rest); atomic replace. Returns them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornMetricsLine)  # cut back here, so not worth a warning
        rows = [r for r in read(path) if r["step"] <= step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return rows


def as_arrays(rows: list[dict]) -> dict[str, np.ndarray]:
    """Columns of the log: `{"step": [...], "test_loss": [...], ...}`."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: np.array([r.get(k, np.nan) for r in rows]) for k in keys}
