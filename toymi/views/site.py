"""`toymi view RUN`: a run's pages as one offline site (Plotly shipped once as `plotly.min.js`), optionally served.

A page is a function `run -> View | None` in `PAGES` (None: the page does not apply, e.g. attention for a model
without attention). A new page is one module with such a function and one line here. Views made in Python (e.g.
`latents_view` of a decomposition trained in a notebook) join a site through `extra`.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from toymi.errors import ConfigError
from toymi.views.attention_page import attention_for_run
from toymi.views.attribution_page import attribution_for_run
from toymi.views.circuits_page import circuits_for_run
from toymi.views.page import PLOTLY_FILE, View, plotly_js
from toymi.views.run_page import run_view
from toymi.views.spd_page import spd_for_run

PAGES: dict[str, Callable] = {"run": run_view, "attention": attention_for_run, "circuits": circuits_for_run,
                              "attribution": attribution_for_run, "spd": spd_for_run}
# What `toymi view RUN` writes unless `--pages` says otherwise: the circuits page runs circuit discovery (compiling
# exact edge patching and EAP: ~5 CPU s on grokking_quick), which would take the site past its 10 s budget. The
# attribution page applies to residual MLPs, AND-gate transformers and induction models only, where it costs a few
# seconds (an induction run's: ~3-4 s on induction_quick, nearly all compiling its programs; that site ~8-9 s).
# The SPD page shows a decomposition kept with the run (`toymi view RUN --spd` trains one): none, no page.
DEFAULT_PAGES = ("run", "attention", "attribution", "spd")
MANIFEST = "pages.json"  # the pages the last write of a site put there: the next write removes those it leaves out


def page_names(pages: Sequence[str] | None) -> list[str]:
    """`pages` checked against `PAGES`; None gives `DEFAULT_PAGES`, `["all"]` every page."""
    if pages is None:
        return list(DEFAULT_PAGES)
    if list(pages) == ["all"]:
        return list(PAGES)
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        raise ConfigError(f"unknown pages {unknown}; have {sorted(PAGES)} (or 'all')")
    return list(pages)


def _nav(views: Sequence[View], here: str) -> str:
    links = "".join(f'<a href="{v.name}.html"{" class=here" if v.name == here else ""}>{html.escape(v.name)}</a>'
                    for v in views)
    return f'<nav><a href="index.html">index</a>{links}</nav>'


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a page


def write_site(run_dir: str | Path, out: str | Path | None = None, pages: Sequence[str] | None = None,
               extra: Sequence[View] = ()) -> Path:
    """Write the run's pages into `out` (default `RUN/view`), with `index.html`; returns the index's path.

    **Arguments:**

    - `run_dir`: a run directory (`toymi train`); a sweep gets its curves only.
    - `pages`: names from `PAGES` (default: `DEFAULT_PAGES`; `["all"]`: every page), each written where it applies.
    - `extra`: more `View`s to include (each page's `name` must be new).
    """
    from toymi.run import load_run

    run = load_run(run_dir)
    builders = [PAGES[n] for n in page_names(pages) if n == "run" or not hasattr(run, "members")]
    views = [v for v in (b(run) for b in builders) if v is not None] + list(extra)
    names = [v.name for v in views]
    if len(set(names)) != len(names) or "index" in names:
        raise ValueError(f"page names must be distinct and not 'index'; got {names}")
    out = Path(out) if out is not None else Path(run_dir) / "view"
    out.mkdir(parents=True, exist_ok=True)
    _write(out / PLOTLY_FILE, plotly_js())
    for v in views:
        _write(out / f"{v.name}.html", v.html(plotlyjs=PLOTLY_FILE, nav=_nav(views, v.name)))
    items = "".join(f'<li><a href="{v.name}.html">{html.escape(v.title)}</a></li>' for v in views)
    _write(out / "index.html", f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(run.directory.name)}'
           f"</title></head><body>{_nav(views, '')}<h1>{html.escape(str(run.directory))}</h1><ul>{items}</ul>"
           "</body></html>\n")
    _forget_earlier_pages(out, names)
    return out / "index.html"


def _forget_earlier_pages(out: Path, names: Sequence[str]) -> None:
    """Remove the pages an earlier write of this site left that this one did not write again (they would sit there
    unlinked, showing an older model), then record this write's pages in `MANIFEST`. Only pages the manifest names
    are removed, so files of the user's own in `out` are never touched; a site without one (or with a damaged one)
    keeps what it has."""
    try:
        earlier = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["pages"]
    except (OSError, ValueError, KeyError, TypeError):
        earlier = []
    for name in earlier:
        if isinstance(name, str) and name not in names and name == Path(name).name and name not in ("", ".", ".."):
            (out / f"{name}.html").unlink(missing_ok=True)
    _write(out / MANIFEST, json.dumps({"pages": list(names)}) + "\n")


def make_server(directory: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An HTTP server of `directory` on 127.0.0.1 (only this machine can reach it); port 0 picks a free one."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(directory: str | Path, port: int = 8000) -> None:
    """Serve `directory` on http://localhost:`port` until interrupted."""
    with make_server(directory, port) as server:
        print(f"serving {directory} on http://localhost:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
