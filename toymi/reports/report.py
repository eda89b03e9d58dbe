"""A dissection report directory: `report.md` (sections of text, tables and figures), `figures/*.png`, and
`metrics.json` (every number the report quotes, by section), written atomically at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from toymi.plot import save_figure


class Report:
    def __init__(self, directory: str | Path, title: str):
        self.directory = Path(directory)
        (self.directory / "figures").mkdir(parents=True, exist_ok=True)
        self.lines = [f"# {title}", ""]
        self.metrics: dict[str, dict] = {}

    def section(self, title: str, text: str = "") -> None:
        self.lines += [f"## {title}", ""] + ([text, ""] if text else [])

    def text(self, text: str) -> None:
        self.lines += [text, ""]

    def figure(self, name: str, fig: Figure, caption: str) -> Path:
        path = self.directory / "figures" / f"{name}.png"
        save_figure(fig, path)
        self.lines += [f"![{caption}](figures/{name}.png)", "", f"*{caption}*", ""]
        return path

    def numbers(self, section: str, values: dict) -> None:
        """Record `values` under `section` in metrics.json and show them as a two-column table."""
        clean = {k: _plain(v) for k, v in values.items()}
        self.metrics.setdefault(section, {}).update(clean)
        self.lines += ["| quantity | value |", "|---|---|"]
        self.lines += [f"| {k} | {_fmt(v)} |" for k, v in clean.items()] + [""]

    def table(self, header: list[str], rows: list[list]) -> None:
        self.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.lines += ["| " + " | ".join(_fmt(_plain(v)) for v in row) + " |" for row in rows] + [""]

    def write(self) -> Path:
        for name, text in (("report.md", "\n".join(self.lines)), ("metrics.json", json.dumps(self.metrics, indent=1))):
            tmp = self.directory / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.directory / name)
        return self.directory / "report.md"


def _plain(value):
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    return array.tolist()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 12:
        return f"[{len(value)} values]"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)
