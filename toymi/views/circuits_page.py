"""The Circuits page: a transformer's edge graph (`toymi.circuits.graph`) with each discovery method's edge scores.

Two figures share one selection (method, edges kept): the graph, nodes by layer (input at the bottom, logits at the
top, a head's q / k / v inputs side by side), every edge a line whose width grows with |score|; and the score of every
edge as a sender × receiver map. A menu picks the method; a slider keeps the top-k edges by |score| (it starts at the
method's own circuit, `discover`'s threshold). Where the true circuit is known (planted models; a trained induction
model whose heads have formed) edges are coloured by true / found; otherwise by the sign of their score.

`circuits_view(graph, found, true_edges)` draws any `toymi.circuits.methods.discover` results; `circuits_for_planted`
a planted model; `circuits_for_run` a run's newest transformer on a few of its task's inputs (noising: the clean input
runs, each edge patched from another input of the eval set; the metric is the correct token's logit minus the mean).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from toymi.circuits.targets import N_INPUTS
from toymi.views.page import View

METHODS = ("exact", "eap")  # fast on any toy model: one compiled call each (a few seconds on 2 CPU cores)
QKV_OFFSET = {"q": -0.12, "k": 0.0, "v": 0.12}  # where an edge meets a head: one point per input
QKV_DROP = 0.3
COLOURS = {"true_found": "#2ca02c", "true_missed": "#d62728", "found": "#ff7f0e", "positive": "#1f77b4",
           "negative": "#d62728", "off": "#dddddd"}

_SCRIPT = """
const D = toymiData, nE = D.names.length, sel = {method: 0, keep: D.kept[0]};
const slider = document.getElementById('keep'), menu = document.getElementById('method');
function edgeStyle(m, e, kept) {
  const s = D.scores[m][e], w = D.max[m] > 0 ? Math.abs(s) / D.max[m] : 0, t = D.truth ? D.truth[e] : null;
  if (kept) {
    const colour = t === null ? (s >= 0 ? D.colours.positive : D.colours.negative)
                              : (t ? D.colours.true_found : D.colours.found);
    return [colour, 1.5 + 6 * w, 'solid', t === null ? 'found' : (t ? 'true, found' : 'found, not true')];
  }
  if (t) return [D.colours.true_missed, 1.5, 'dash', 'true, missed'];
  return [D.colours.off, 0.6, 'solid', 'not kept'];
}
function show() {
  const m = sel.method, styles = [...Array(nE).keys()].map(e => edgeStyle(m, e, D.rank[m][e] < sel.keep));
  Plotly.restyle('graph', {'line.color': styles.map(s => s[0]), 'line.width': styles.map(s => s[1]),
                           'line.dash': styles.map(s => s[2])}, [...Array(nE).keys()]);
  const text = styles.map((s, e) => `${D.names[e]}<br>${D.methods[m]} score ${D.scores[m][e].toPrecision(3)}<br>${s[3]}`);
  Plotly.restyle('graph', {text: [text], 'marker.color': [styles.map(s => s[0])]}, [nE + 1]);
  Plotly.restyle('scores', {z: [D.matrix[m]]}, [0]);
  Plotly.relayout('scores', {'title.text': `${D.methods[m]} score per edge (sender → receiver)`});
  const kept = [...Array(nE).keys()].filter(e => D.rank[m][e] < sel.keep);
  const cut = kept.length ? Math.min(...kept.map(e => Math.abs(D.scores[m][e]))) : null;
  let line = `${D.methods[m]}: top ${sel.keep} of ${nE} edges` + (cut === null ? '' : ` (|score| ≥ ${cut.toPrecision(3)})`);
  if (D.truth) {
    const hits = kept.filter(e => D.truth[e]).length, n = D.truth.filter(t => t).length;
    line += `; ${hits} of ${n} true edges found, ${kept.length - hits} false`;
  }
  document.getElementById('summary').textContent = line;
  document.getElementById('keep-value').textContent = sel.keep;
}
menu.addEventListener('change', e => { sel.method = +e.target.value; sel.keep = D.kept[sel.method];
  slider.value = sel.keep; show(); });
slider.addEventListener('input', e => { sel.keep = +e.target.value; show(); });
show();
"""


def _end(graph, pos, receiver: str) -> tuple[float, float]:
    """Where an edge into `receiver` ends: its node, a head's q / k / v input side by side just below it."""
    if receiver == "logits":
        return pos["logits"]
    node, kind = (receiver[:-3], receiver[-2]) if receiver.endswith(">") else (receiver, None)
    x, y = pos[node]
    return (x + QKV_OFFSET[kind], y - QKV_DROP) if kind else (x, y)


def edge_curve(a, b, n: int = 16) -> tuple[list, list]:
    """A quadratic Bézier from `a` to `b`, bowed sideways by how many rows it skips (so an edge that passes a node's
    row, e.g. input -> logits, does not run through that node)."""
    (x0, y0), (x1, y1) = a, b
    bow = 0.35 * max(0.0, abs(y1 - y0) - 1.0) * (1 if (x0 + x1) >= 0 else -1)
    cx, cy = (x0 + x1) / 2 + bow, (y0 + y1) / 2
    t = np.linspace(0, 1, n)
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1
    ys = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1
    return xs.round(3).tolist(), ys.round(3).tolist()


def _graph_figure(graph, has_truth: bool):
    """Edges as traces 0 .. n_edges - 1 (styled by the page's script), the nodes, one hover marker per edge, then
    the legend and the q / k / v labels of each head's inputs."""
    import plotly.graph_objects as go

    from toymi.plot.circuits import node_positions

    pos = {k: v for k, v in node_positions(graph).items() if k in graph.senders or k == "logits"}
    fig = go.Figure()
    mids = []
    for s, r in graph.edges:
        xs, ys = edge_curve(pos[graph.senders[s]], _end(graph, pos, graph.receivers[r]))
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False, line=dict(color="#ddd"))
        mids.append((xs[len(xs) // 2], ys[len(ys) // 2]))
    names = list(pos)
    fig.add_scatter(x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text", text=names,
                    textposition="middle center", hoverinfo="text", showlegend=False, textfont=dict(size=11),
                    marker=dict(size=38, color="white", line=dict(color="black", width=1.5)))
    fig.add_scatter(x=[m[0] for m in mids], y=[m[1] for m in mids], mode="markers", text=graph.edge_names(),
                    hovertemplate="%{text}<extra></extra>", showlegend=False, marker=dict(size=6, opacity=0.5))
    legend = ((("true_found", "true, found"), ("true_missed", "true, missed"), ("found", "found, not true"))
              if has_truth else (("positive", "kept, score > 0"), ("negative", "kept, score < 0")))
    for key, label in legend:
        fig.add_scatter(x=[None], y=[None], mode="lines", name=label, line=dict(color=COLOURS[key],
                        dash="dash" if key == "true_missed" else "solid", width=3))
    heads = [n for n in names if ".h" in n]
    fig.add_scatter(x=[pos[h][0] + QKV_OFFSET[k] for h in heads for k in "qkv"],
                    y=[pos[h][1] - QKV_DROP - 0.08 for h in heads for k in "qkv"], mode="text",
                    text=[k for h in heads for k in "qkv"], hoverinfo="skip", showlegend=False,
                    textfont=dict(size=9, color="#777"))
    n_heads, n_layers = graph.config.n_heads, graph.config.n_layers
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=max(420, 170 * n_layers + 200), width=max(520, 150 * n_heads + 260),
                      margin=dict(t=30, b=10, l=10, r=10), plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.02, yanchor="top"))
    return fig


def _scores_figure(graph, matrix: np.ndarray):
    import plotly.graph_objects as go

    limit = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 1.0
    fig = go.Figure(go.Heatmap(z=matrix, x=list(graph.receivers), y=list(graph.senders), colorscale="RdBu",
                               zmid=0, zmin=-limit, zmax=limit,
                               hovertemplate="%{y} → %{x}: %{z:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(300, 22 * len(graph.senders) + 160), width=max(480, 18 * len(graph.receivers) + 220),
                      margin=dict(t=40, b=120, l=70, r=10), xaxis=dict(tickangle=-60))
    return fig


def circuits_view(graph, found: Sequence, true_edges=None, title: str = "Circuits", note: str = "") -> View:
    """The edge graph with the scores of one or more discovery methods, as a page.

    **Arguments:**

    - `graph`: the model's `Graph` (`toymi.circuits.forward.graph_of(model.config)`).
    - `found`: `Found` results of `toymi.circuits.methods.discover` (method, scores, circuit), one per method.
    - `true_edges`: the true circuit, a boolean `[n_edges]` mask or edge names (`graph.edge_set`), if known.
    - `title`, `note`: the heading, and a line of text under it (e.g. what the inputs were).

    **Returns:** a `View`.
    """
    if not found:
        raise ValueError("circuits_view needs at least one method's results (toymi.circuits.methods.discover)")
    scores = np.stack([np.asarray(f.scores, np.float64) for f in found])
    if scores.shape[1] != graph.n_edges:
        raise ValueError(f"scores cover {scores.shape[1]} edges but the graph has {graph.n_edges}: results of "
                         "another model?")
    truth = None
    if true_edges is not None:
        truth = np.asarray(true_edges) if np.asarray(true_edges).dtype == bool else graph.edge_set(true_edges)
        if truth.shape != (graph.n_edges,):
            raise ValueError(f"true_edges must be a boolean mask over the graph's {graph.n_edges} edges or edge "
                             f"names, got shape {truth.shape}")
    rank = np.empty(scores.shape, int)
    for m, s in enumerate(scores):  # rank[m, e]: edge e's place by |score| (0 = the most important)
        rank[m, np.argsort(-np.abs(s), kind="stable")] = np.arange(graph.n_edges)
    kept = [int(np.asarray(f.circuit, bool).sum()) for f in found]
    matrix = [np.where(graph.valid, graph.edge_matrix(s), np.nan) for s in scores]
    options = "".join(f'<option value="{i}">{html.escape(f.method)}</option>' for i, f in enumerate(found))
    parts = [f'<p class="note">{html.escape(note)} Edges point up, from a node\'s output to a later node\'s input (a '
             "head's q, k, v inputs side by side below it). The slider keeps the top edges by |score|; it starts at "
             "each method's own circuit. Hover an edge's midpoint for its score.</p>",
             f'<p>method: <select id="method">{options}</select> &nbsp; edges kept: <input type="range" id="keep" '
             f'min="0" max="{graph.n_edges}" value="{kept[0]}" style="width:18em;vertical-align:middle"> '
             '<span id="keep-value"></span></p><p><b id="summary"></b></p>',
             '<div class="row">', ("graph", _graph_figure(graph, truth is not None)),
             ("scores", _scores_figure(graph, matrix[0])), "</div>"]
    data = {"names": graph.edge_names(), "methods": [f.method for f in found], "scores": scores, "rank": rank,
            "max": np.abs(scores).max(axis=1), "kept": kept, "matrix": matrix,
            "truth": None if truth is None else truth.tolist(), "colours": COLOURS}
    return View("circuits", title, parts, data, _SCRIPT)


def circuits_for_planted(planted, methods: Sequence[str] = METHODS) -> View:
    """The page of a planted circuit (`toymi.circuits.planted.PLANTED[name]()`): noising under its own ablation,
    with its true edges."""
    from toymi.circuits.forward import graph_of
    from toymi.circuits.methods import discover_all
    from toymi.circuits.patching import setup

    s = setup(planted.model, planted.clean, planted.corrupted, direction="noising", ablation=planted.ablation)
    found = discover_all(methods, planted.model, s, planted.metric)
    note = (f"Planted circuit {planted.name}: {len(planted.clean)} clean inputs, edges ablated by "
            f"{planted.ablation}; its {len(planted.true_edges)} true edges are known by construction.")
    return circuits_view(graph_of(planted.model.config), found, planted.true_edges,
                         f"Circuits: planted {planted.name}", note)


def circuits_for_run(run, clean=None, corrupted=None, metric=None, methods: Sequence[str] = METHODS,
                     n_inputs: int = N_INPUTS) -> View | None:
    """The page for a run's newest transformer; None for a model that is not a transformer, or whose outputs are
    neither tokens nor AND gates.

    Without `clean`: the run's discovery target (`toymi.circuits.targets.run_target`: a trained induction model
    against its known circuit, any other run on `n_inputs` of its task's eval inputs). With `clean`, also pass
    `corrupted` and `metric` (logits -> scalar). Edges are patched from `corrupted` into the `clean` run (noising)
    and scored by each of `methods`.
    """
    from toymi.circuits.forward import graph_of
    from toymi.circuits.methods import discover_all
    from toymi.circuits.patching import setup
    from toymi.circuits.targets import has_target, run_target

    model = run.model
    if not has_target(run):
        return None
    truth = None
    if clean is None:
        target = run_target(run, n_inputs)
        clean, corrupted, metric = target.planted.clean, target.planted.corrupted, target.planted.metric
        truth, what = (target.planted.true_edges if target.truth_known else None), target.inputs
    elif corrupted is None or metric is None:
        raise ValueError("with clean inputs, pass corrupted inputs and a metric (logits -> scalar) too")
    else:
        what = "the inputs given, edges patched from the corrupted ones (noising)"
    s = setup(model, clean, corrupted, direction="noising", ablation="patch")
    found = discover_all(methods, model, s, metric)
    return circuits_view(graph_of(model.config), found, truth,
                         f"Circuits: {run.directory.name}, step {run.model_step}", f"Inputs: {what}.")
