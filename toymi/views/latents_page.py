"""The Latents page: a decomposition's latents (an SAE's, a transcoder's, a baseline's), one at a time.

For the chosen latent: its top-activating inputs rendered as tokens (the position the activation was read at
shaded by the activation), the histogram of its non-zero activations, the nearest true feature and its cosine where
a truth exists, and its map where the task has one (`Task.input_map`): for modular arithmetic its activation over
every (a, b) as a p × p map, for chess its mean activation per square moved to, on the board. A bar per latent
(how often it fires) selects it on click, as does the menu.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Float, Int

from toymi.tasks.input_map import cell_means
from toymi.views.page import View

_SCRIPT = """
const D = toymiData;
let cur = 0;
function show() {
  const L = D.latents[cur];
  Plotly.restyle('histogram', {x: [L.hist_x], y: [L.hist_y]});
  Plotly.relayout('histogram', {'title.text': `latent ${L.id}: non-zero activations`});
  if (D.has_grid) {
    Plotly.restyle('grid', {z: [L.grid]});
    Plotly.relayout('grid', {'title.text': `latent ${L.id}: ${D.grid_title}`});
  }
  Plotly.restyle('overview', {'marker.color': [D.latents.map((_, i) => i === cur ? '#d62728' : '#1f77b4')]});
  let info = `latent ${L.id}: fires on ${(100 * L.freq).toFixed(1)}% of inputs, max ${L.max}`;
  if (L.truth !== null) info += `; nearest true feature ${L.truth} (cosine ${L.cos.toFixed(3)})`;
  document.getElementById('info').textContent = info;
  document.getElementById('latent').value = cur;
  const body = document.getElementById('top');
  body.replaceChildren();
  for (const [i, v] of L.top) {
    const row = body.insertRow(), cell = row.insertCell();
    row.insertCell(0).textContent = v.toFixed(3);
    D.labels[i].forEach((tok, j) => {
      const s = document.createElement('span');
      s.className = 'tok'; s.textContent = tok;
      s.style.background = j === D.positions[i] ? `rgba(214,39,40,${Math.max(v, 0) / (L.max || 1)})` : '#eee';
      cell.appendChild(s);
    });
  }
}
document.getElementById('overview').on('plotly_click', e => { cur = e.points[0].pointNumber; show(); });
document.getElementById('latent').addEventListener('change', e => { cur = +e.target.value; show(); });
show();
"""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def latent_summaries(codes: np.ndarray, directions: np.ndarray, features: np.ndarray | None,
                     grid: tuple[int, int] | None, n_latents: int, top_k: int, bins: int = 30,
                     cells: np.ndarray | None = None) -> list[dict]:
    """Per latent (the `n_latents` that fire most often, dead ones left out): id, firing frequency, max, top inputs
    `[(input, activation)]`, histogram of non-zero activations, nearest true feature and cosine, and its map: the
    mean activation over each cell's inputs (`cells`, default every input its own cell in order)."""
    fires = (codes > 0).mean(0)
    if grid is not None and cells is None:
        cells = np.arange(len(codes))
    order = [int(i) for i in np.argsort(-fires, kind="stable") if fires[i] > 0][:n_latents]
    cosines = _unit(directions) @ _unit(features).T if features is not None else None  # [latent, true]
    out = []
    for i in order:
        a = codes[:, i]
        top = np.argsort(-a, kind="stable")[:top_k]
        counts, edges = np.histogram(a[a > 0], bins=bins)
        nearest = int(np.argmax(np.abs(cosines[i]))) if cosines is not None else None
        out.append({"id": i, "freq": float(fires[i]), "max": float(f"{a.max():.4g}"),
                    "top": [[int(j), float(a[j])] for j in top if a[j] > 0],
                    "hist_x": (edges[:-1] + edges[1:]) / 2, "hist_y": counts,
                    "truth": nearest, "cos": None if nearest is None else float(cosines[i, nearest]),
                    "grid": None if grid is None else cell_means(a, cells, grid)})
    return out


def _figures(latents: list[dict], grid: tuple[int, int] | None, grid_labels: tuple[str, str]) -> list:
    import plotly.graph_objects as go

    overview = go.Figure(go.Bar(x=[f"#{l['id']}" for l in latents], y=[l["freq"] for l in latents],
                                hovertemplate="latent %{x}: fires on %{y:.1%}<extra></extra>"))
    overview.update_layout(height=260, margin=dict(t=40, b=40, l=50, r=10), title="how often each latent fires",
                           yaxis=dict(title="fraction of inputs", tickformat=".0%"), xaxis=dict(type="category"))
    histogram = go.Figure(go.Bar(x=[0], y=[0], marker_color="#7f7f7f"))
    histogram.update_layout(height=300, width=460, margin=dict(t=40, b=40, l=50, r=10), bargap=0.05,
                            xaxis_title="activation", yaxis_title="inputs")
    figs = [("overview", overview), ("histogram", histogram)]
    if grid is not None:
        m = go.Figure(go.Heatmap(z=np.zeros(grid), colorscale="Reds",
                                 hovertemplate=f"{grid_labels[0]}=%{{y}} {grid_labels[1]}=%{{x}}: %{{z:.3f}}"
                                               "<extra></extra>"))
        m.update_layout(height=460, width=500, margin=dict(t=40, b=40, l=50, r=10),
                        xaxis_title=grid_labels[1], yaxis=dict(title=grid_labels[0], autorange="reversed"))
        figs.append(("grid", m))
    return figs


def latents_view(decomposition, tokens: Int[Array, "n pos"], activations: Float[Array, "n d"],
                 labels: list[list[str]], *, positions=None, features: Float[Array, "n_true d"] | None = None,
                 grid: tuple[int, int] | None = None, grid_labels: tuple[str, str] = ("a", "b"),
                 cells: Int[Array, " n"] | None = None, n_latents: int = 32, top_k: int = 8,
                 title: str = "Latents") -> View:
    """A decomposition's latents on `activations`, one row per input, as a page.

    **Arguments:**

    - `decomposition`: anything with `encode(x) -> codes` and `directions` (`toymi.decompose`'s SAEs, transcoders,
      baselines); a transcoder's `activations` are its input (the MLP's input).
    - `tokens`, `labels`: the inputs `[n, pos]` and their token labels (`toymi.views.tokens.token_labels`).
    - `activations`: `[n, d]`, the site's value for each input at `positions[i]` (default: the last position).
    - `features`: true directions `[n_true, d]` in the space of `directions`, where a truth exists.
    - `grid`: e.g. `(p, p)` when the inputs are every (a, b) in order: each latent's activation as a map.
    - `cells`: with `grid`, the cell of each input (row-major; the map shows the mean over a cell's inputs), e.g. the
      board square of a chess move; default: input i is cell i.
    - `n_latents`: how many latents (those that fire most often); `top_k`: top inputs per latent.

    **Returns:** a `View`.
    """
    tokens, activations = np.asarray(tokens), np.asarray(activations)
    n = tokens.shape[0]
    if tokens.ndim != 2 or activations.ndim != 2 or activations.shape[0] != n or len(labels) != n:
        raise ValueError(f"need tokens [n, pos], activations [n, d] and n label rows; got tokens {tokens.shape}, "
                         f"activations {activations.shape}, {len(labels)} label rows")
    if grid is not None and cells is None and grid[0] * grid[1] != n:
        raise ValueError(f"grid {grid} needs {grid[0] * grid[1]} inputs in order, got {n}")
    if cells is not None:
        cells = np.asarray(cells)
        if grid is None or cells.shape != (n,) or cells.min() < 0 or cells.max() >= grid[0] * grid[1]:
            raise ValueError(f"cells must be [n] = [{n}] indices into a grid, got shape {cells.shape} for grid {grid}")
    n_pos = tokens.shape[1]
    positions = np.broadcast_to(np.full(n, -1) if positions is None else np.asarray(positions), (n,))
    if ((positions < -n_pos) | (positions >= n_pos)).any():
        raise IndexError(f"positions must be in [-{n_pos}, {n_pos}) for inputs of {n_pos} tokens, got "
                         f"{sorted(set(positions.tolist()))}")
    positions = positions % n_pos
    codes = np.asarray(decomposition.encode(activations))
    directions = np.asarray(decomposition.directions)
    latents = latent_summaries(codes, directions, None if features is None else np.asarray(features), grid,
                               n_latents, top_k, cells=cells)
    if not latents:
        raise ValueError("no latent fires on these inputs: nothing to show")
    options = "".join(f'<option value="{i}">latent {l["id"]}</option>' for i, l in enumerate(latents))
    figs = _figures(latents, grid, grid_labels)
    parts = [f'<p class="note">{codes.shape[1]} latents on {n} inputs; the {len(latents)} that fire most often are '
             "shown. Click a bar (or use the menu) to pick a latent.</p>",
             f'<p>latent: <select id="latent">{options}</select> <b id="info"></b></p>', figs[0],
             '<div class="row">', figs[1], *figs[2:],
             '<div><h3>Top-activating inputs</h3><table class="latents"><tbody id="top"></tbody></table></div>',
             "</div>"]
    data = {"latents": latents, "labels": labels, "positions": positions, "has_grid": grid is not None,
            "grid_title": "over every (a, b)" if cells is None else f"mean activation by {grid_labels[0]} × "
                                                                      f"{grid_labels[1]}"}
    return View("latents", title, parts, data, _SCRIPT)


def latents_for_run(run, decomposition, site: str = "mlp_post", layer: int = -1, position: int = -1,
                    features: Float[Array, "n_true d"] | None = None, n_inputs: int = 512, **kwargs) -> View:
    """`latents_view` of a decomposition of `site` (at `layer`) in a run's newest model.

    Inputs: the task's `input_map` where it has one (modular arithmetic: every (a, b), each latent drawn as a p × p
    map; chess: completed moves, drawn on the board by the square moved to), read at the map's positions; otherwise
    the first `n_inputs` of the task's first eval set, read at `position`. Other arguments go to `latents_view`.
    """
    from toymi.dissect.probes import capture_site
    from toymi.views.tokens import token_labels

    task, model = run.task, run.model
    where = task.input_map(n_inputs)
    if where is None:
        batch = next(iter(task.eval_batches().values()))
        tokens = np.asarray(task.model_inputs(batch, model.kind)[:n_inputs])  # e.g. tokens made of AND-gate features
        positions, layout = np.full(len(tokens), position), {}
    else:
        tokens, positions = where.tokens, where.positions
        layout = {"grid": where.shape, "cells": where.cells, "grid_labels": where.axes}
    captured = capture_site(model, tokens, site)  # [n, layer, pos, ...] for a per-layer site, else [n, pos, ...]
    values = np.asarray(captured[:, layer] if model.sites[site].per_layer else captured)
    activations = values[np.arange(len(tokens)), positions]
    return latents_view(decomposition, tokens, activations, [token_labels(task, t) for t in tokens],
                        positions=positions, features=features, **layout,
                        title=kwargs.pop("title", f"Latents: {site} of {run.directory.name}"), **kwargs)
