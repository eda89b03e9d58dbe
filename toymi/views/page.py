"""`View`: one HTML page of Plotly figures, plain HTML and a little script, written offline or shown in Jupyter.

Plotly draws every plot; toymi's own JavaScript only wires controls (a click selects a head, a menu picks an input)
to `Plotly.restyle` on data embedded in the page as JSON (`toymiData`). Nothing is fetched from the network: the
Plotly bundle is either inlined (`View.html()`, `_repr_html_`) or shipped once beside the pages of a site
(`View.html(plotlyjs="plotly.min.js")`, see `toymi.views.site`).
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import numpy as np

PLOTLY_FILE = "plotly.min.js"
_CONFIG = {"displaylogo": False, "responsive": True}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; }
nav { padding: .6em 0; border-bottom: 1px solid #ddd; margin-bottom: .8em; }
nav a { margin-right: 1.2em; text-decoration: none; color: #1f5fa8; }
nav a.here { font-weight: bold; color: #222; }
.note { color: #555; max-width: 70em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.tok { display: inline-block; padding: 1px 3px; margin: 1px; border-radius: 3px; font-family: monospace; }
table.latents td { padding: 2px 6px; vertical-align: top; }
"""


def plotly_js() -> str:
    """The Plotly bundle that the installed `plotly` package ships (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_div(fig, div_id: str) -> str:
    """A Plotly figure as a `<div id=div_id>` and the script that draws it (the bundle must already be loaded)."""
    return fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id, config=_CONFIG)


def to_json(data) -> str:
    """JSON for `toymiData`: numpy arrays as nested lists with 4 significant digits (sizes stay small), NaN as null,
    and `</` escaped so the text cannot close its `<script>` element."""

    def plain(x):
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, (np.ndarray, np.generic)) or hasattr(x, "__array__"):
            a = np.asarray(x)
            if a.dtype.kind == "f":
                a = np.where(np.isfinite(a), a, np.nan).astype(float)
                return plain_float(a)
            return a.tolist()
        return x

    def plain_float(a):
        if a.ndim == 0:
            return None if np.isnan(a) else float(f"{float(a):.4g}")
        return [plain_float(v) for v in a]

    return json.dumps(plain(data), separators=(",", ":")).replace("</", "<\\/")


def example_menu_script(figure_id: str) -> str:
    """The script of a page that shows one example at a time: the `<select id="example">` menu swaps in
    `toymiData.figures[i]` (drawn in `figure_id`) and `toymiData.summaries[i]` (into `<b id="summary">`)."""
    return f"""
const D = toymiData, menu = document.getElementById('example');
function show(i) {{
  Plotly.react('{figure_id}', D.figures[i].data, D.figures[i].layout);
  document.getElementById('summary').textContent = D.summaries[i];
}}
menu.addEventListener('change', e => show(+e.target.value));
document.getElementById('summary').textContent = D.summaries[0];
"""


@dataclasses.dataclass(repr=False)
class View:
    """One page: a title, parts in order (HTML strings, or `(div_id, plotly Figure)` pairs), JSON data for the
    page's script, and the script itself (runs after every figure is drawn; it sees `toymiData`).

    - `view.html()`: a whole page with Plotly inlined; `view.save(path)` writes it.
    - In Jupyter, `view` shows itself (`_repr_html_`: the page in an `<iframe srcdoc>`, so its script and Plotly
      run isolated from the notebook's own).
    """

    name: str  # file stem in a site, e.g. "attention"
    title: str
    parts: list = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)
    script: str = ""

    def __repr__(self) -> str:  # short: Jupyter stores it beside the page as the cell's text/plain output
        return f"View({self.name!r}, {self.title!r}, figures {self.figure_ids()})"

    def figure_ids(self) -> list[str]:
        return [p[0] for p in self.parts if isinstance(p, tuple)]

    def body(self) -> str:
        out = [f"<h1>{html.escape(self.title)}</h1>"]
        out += [figure_div(p[1], p[0]) if isinstance(p, tuple) else p for p in self.parts]
        out.append(f"<script>const toymiData = {to_json(self.data)};\n{self.script}</script>")
        return "\n".join(out)

    def html(self, plotlyjs: str | None = None, nav: str = "") -> str:
        """The page. `plotlyjs`: a path to load the Plotly bundle from (a site ships it once); None inlines it."""
        bundle = f'<script src="{html.escape(plotlyjs)}"></script>' if plotlyjs else f"<script>{plotly_js()}</script>"
        return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f"<style>{_STYLE}</style>{bundle}</head>\n<body>{nav}\n{self.body()}\n</body></html>\n")

    def save(self, path: str | Path) -> Path:
        """Write the page with Plotly inlined: one file that works offline."""
        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" style="width:100%;height:900px;'
                'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')
