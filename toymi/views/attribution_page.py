"""The Attribution page: a residual MLP's attribution graphs (circuit tracing, `toymi.circuits.attribution_graph`),
one example at a time, for the AND-gate and compressed-computation models of any depth.

Nodes sit in rows: the example's active inputs at the bottom, then each layer's latents, each layer's error node at
the right of its row, and the outputs at the top. The graph is pruned backwards from the outputs shown (those whose
target is non-zero: a gate that is on, a compressed-computation output whose feature is active): an edge is kept when
it carries at least `min_share` of the edge mass (the sum of |edge|) into its target, and a latent is drawn when a
kept edge leaves it for a node already drawn; at most `max_edges`, the largest. An edge's width grows with |value|
(activation × virtual weight), its colour is its sign, and hovering its midpoint gives the value. A menu picks the
example.

`attribution_view(model, transcoders, x, where)` draws any replacement (e.g. transcoders trained in a notebook);
`attribution_for_run` a run's newest model with its own neurons as the replacement (exact: the error nodes are zero,
so no training is needed).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from toymi.views.circuits_page import edge_curve
from toymi.views.page import View

MIN_SHARE = 0.05  # an edge is drawn when it carries ≥ 5% of the edge mass into its target
MAX_EDGES = 80
MAX_OUTPUTS = 4  # outputs drawn per example, the largest first
N_EXAMPLES = 6
COLOURS = {"positive": "#1f77b4", "negative": "#d62728"}
NODE_FILL = {"x": "#d9f2d9", "z": "#dde8f7", "e": "#fff0c2", "y": "#fde2cc"}  # input, latent, error node, output

_SCRIPT = """
const D = toymiData, menu = document.getElementById('example');
function show(i) {
  Plotly.react('graph', D.figures[i].data, D.figures[i].layout);
  document.getElementById('summary').textContent = D.summaries[i];
}
menu.addEventListener('change', e => show(+e.target.value));
document.getElementById('summary').textContent = D.summaries[0];
"""


def pruned_edges(graph, example: int, outputs: Sequence[int], sizes: Sequence[int], min_share: float = MIN_SHARE,
                 max_edges: int = MAX_EDGES) -> list[tuple[tuple, tuple, float]]:
    """The edges of `graph`'s row `example` drawn for `outputs`, as `(source, target, value)` with nodes `("x", j)`
    (input), `("z", i)` (latent i on the concatenated latent axis), `("e", l)` (layer l's error node) and `("y", k)`
    (output). Pruned backwards, targets from the top down: the outputs, then each layer's latents that a kept edge
    leaves; at each target the sources carrying at least `min_share` of its incoming edge mass. The input → output
    edge is the residual stream and the skips together."""
    g = {k: np.asarray(getattr(graph, k)[example], np.float64) for k in
         ("input_latent", "latent_latent", "error_latent", "latent_output", "residual", "skip", "error")}
    starts = np.concatenate([[0], np.cumsum(sizes)])
    kept: list[tuple[tuple, tuple, float]] = []

    def keep(target, sources):
        mass = sum(abs(v) for _, v in sources)
        chosen = [(s, v) for s, v in sources if mass > 0 and abs(v) >= min_share * mass]
        kept.extend((s, target, v) for s, v in chosen)
        return [s for s, _ in chosen]

    todo: set[int] = set()
    for k in outputs:
        sources = ([(("z", i), v) for i, v in enumerate(g["latent_output"][:, k]) if v != 0]
                   + [(("x", j), v) for j, v in enumerate(g["residual"][:, k] + g["skip"][:, k]) if v != 0]
                   + [(("e", l), v) for l, v in enumerate(g["error"][:, k]) if v != 0])
        todo.update(s[1] for s in keep(("y", k), sources) if s[0] == "z")
    for layer in reversed(range(len(sizes))):
        for i in sorted(t for t in todo if starts[layer] <= t < starts[layer + 1]):
            sources = ([(("x", j), v) for j, v in enumerate(g["input_latent"][:, i]) if v != 0]
                       + [(("z", a), v) for a, v in enumerate(g["latent_latent"][:, i]) if v != 0]
                       + [(("e", l), v) for l, v in enumerate(g["error_latent"][:, i]) if v != 0])
            todo.update(s[1] for s in keep(("z", i), sources) if s[0] == "z")
    kept.sort(key=lambda e: -abs(e[2]))
    return kept[:max_edges]


def _layer_of(sizes: Sequence[int]) -> np.ndarray:
    """Each latent's layer on the concatenated latent axis."""
    return np.repeat(np.arange(len(sizes)), sizes)


def _layout(edges, outputs, sizes) -> dict[tuple, tuple[float, float]]:
    """Node positions: a row per kind (inputs y = 0, layer l's latents y = l + 1, outputs on top), each row centred,
    its nodes in index order, error nodes at the right of their layer's row."""
    layer_of = _layer_of(sizes)
    nodes = {n for e in edges for n in e[:2]} | {("y", k) for k in outputs}

    def row(node):
        kind, i = node
        if kind in ("x", "y"):
            return 0 if kind == "x" else len(sizes) + 1
        return (int(layer_of[i]) if kind == "z" else i) + 1  # a latent's layer, or the error node's own

    rows: dict[int, list] = {}
    for n in nodes:
        rows.setdefault(row(n), []).append(n)
    pos = {}
    for y, members in rows.items():
        members.sort(key=lambda n: (n[0] == "e", n[1]))
        for i, n in enumerate(members):
            pos[n] = (i - (len(members) - 1) / 2, float(y))
    return pos


def _figure(edges, pos, names: dict, values: dict, n_layers: int):
    import plotly.graph_objects as go

    fig = go.Figure()
    largest = max((abs(v) for *_, v in edges), default=1.0) or 1.0
    mids = []
    for s, t, v in edges:
        xs, ys = edge_curve(pos[s], pos[t])  # bowed when it skips a row, so it does not run through that row's nodes
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False, opacity=0.75,
                        line=dict(color=COLOURS["positive" if v >= 0 else "negative"], width=1 + 7 * abs(v) / largest))
        mids.append((xs[len(xs) // 2], ys[len(ys) // 2]))
    fig.add_scatter(x=[m[0] for m in mids], y=[m[1] for m in mids], mode="markers",
                    text=[f"{names[s]} → {names[t]}: {v:+.3g}" for s, t, v in edges],
                    hovertemplate="%{text}<extra></extra>", showlegend=False,
                    marker=dict(size=6, opacity=0.4, color="#777"))
    nodes = list(pos)
    fig.add_scatter(x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
                    text=[names[n] for n in nodes], textposition="middle center", textfont=dict(size=10),
                    hovertext=[f"{names[n]}: {values[n]:.3g}" for n in nodes], hoverinfo="text", showlegend=False,
                    marker=dict(size=40, color=[NODE_FILL[n[0]] for n in nodes],
                                line=dict(color="black", width=1.2)))
    for key, label in (("positive", "edge > 0"), ("negative", "edge < 0")):
        fig.add_scatter(x=[None], y=[None], mode="lines", name=label, line=dict(color=COLOURS[key], width=3))
    width = max(len([n for n in nodes if pos[n][1] == y]) for y in {p[1] for p in pos.values()})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[-0.6, n_layers + 1.6])
    fig.update_layout(height=160 * (n_layers + 2) + 60, width=max(900, 110 * width + 160), plot_bgcolor="white",
                      margin=dict(t=20, b=10, l=10, r=10), legend=dict(orientation="h", y=-0.02, yanchor="top"))
    return fig


def attribution_view(model, transcoders, x, where, output_names: Sequence[str] | None = None,
                     title: str = "Attribution graphs", note: str = "", min_share: float = MIN_SHARE,
                     max_edges: int = MAX_EDGES) -> View:
    """Attribution graphs of a few examples, one shown at a time, as a page.

    **Arguments:**

    - `model`: a `ResidualMLP`; `transcoders`: one per MLP layer (`toymi.circuits.attribution_graph.as_layers`;
      `neuron_transcoders(model)` for the model's own neurons).
    - `x`: `[n_examples, n_features]` inputs, one graph each.
    - `where`: `[n_examples, n_outputs]` booleans, the outputs to trace back from (at most `MAX_OUTPUTS` each, the
      largest |output| first); every example needs one.
    - `output_names`: one per output (default `y0`, `y1`, ...); `title`, `note`: the heading and a line under it.
    - `min_share`, `max_edges`: the pruning (see the module docstring).

    **Returns:** a `View`.
    """
    from toymi.circuits.attribution_graph import as_layers, attribution_graph, virtual_weights

    layers = as_layers(model, transcoders)
    weights = virtual_weights(model, layers)
    x, where = np.asarray(x, np.float32), np.asarray(where, bool)
    n_outputs = weights.residual.shape[1]
    if x.ndim != 2 or where.shape != (len(x), n_outputs):
        raise ValueError(f"x must be [n_examples, n_features] and where [n_examples, n_outputs={n_outputs}]; got "
                         f"{x.shape} and {where.shape}")
    if not where.any(1).all():
        raise ValueError(f"every example needs an output to trace back from; rows {np.flatnonzero(~where.any(1))} "
                         "have none")
    if not 0 < min_share < 1 or max_edges < 1:
        raise ValueError(f"min_share must be in (0, 1) and max_edges positive; got {min_share}, {max_edges}")
    names_out = list(output_names) if output_names is not None else [f"y{k}" for k in range(n_outputs)]
    if len(names_out) != n_outputs:
        raise ValueError(f"{len(names_out)} output names for {n_outputs} outputs")
    g = attribution_graph(model, layers, x, weights)
    sizes = weights.sizes
    figures, summaries, kept = [], [], []
    for b in range(len(x)):
        outputs = np.flatnonzero(where[b])
        outputs = outputs[np.argsort(-np.abs(np.asarray(g.outputs[b])[outputs]), kind="stable")][:MAX_OUTPUTS]
        edges = pruned_edges(g, b, outputs.tolist(), sizes, min_share, max_edges)
        pos = _layout(edges, outputs.tolist(), sizes)
        names, values = _labels(pos, g, b, sizes, names_out)
        figures.append(_figure(edges, pos, names, values, len(sizes)).to_plotly_json())
        active = ", ".join(f"x{j}={x[b, j]:.2g}" for j in np.flatnonzero(x[b]))
        shown = ", ".join(f"{names_out[k]} = {float(g.outputs[b, k]):.3g}" for k in outputs)
        summaries.append(f"inputs: {active or 'none'}; outputs traced: {shown}; {len(edges)} edges drawn")
        kept.append([[names[s], names[t], v] for s, t, v in edges])
    options = "".join(f'<option value="{b}">example {b}</option>' for b in range(len(x)))
    import plotly.graph_objects as go

    parts = [f'<p class="note">{html.escape(note)} Edges point up, from a node to the node whose pre-activation it '
             f"feeds (activation × virtual weight); an edge is drawn when it carries at least {min_share:.0%} of the "
             f"edge mass into its target (at most {max_edges} edges). Latents are named L<i>layer</i>·<i>index</i>; "
             "err L<i>l</i> is layer <i>l</i>'s error node (what its transcoder misses). Hover a node or an edge's "
             "midpoint for its value.</p>",
             f'<p>example: <select id="example">{options}</select></p><p><b id="summary"></b></p>',
             ("graph", go.Figure(figures[0]))]
    return View("attribution", title, parts, {"figures": figures, "summaries": summaries, "edges": kept}, _SCRIPT)


def _labels(pos, g, b, sizes, output_names) -> tuple[dict, dict]:
    """Each drawn node's name and activation (an input's value, a latent's, an error node's largest |edge| out,
    an output's value)."""
    layer_of, starts = _layer_of(sizes), np.concatenate([[0], np.cumsum(sizes)])
    names, values = {}, {}
    for node in pos:
        kind, i = node
        if kind == "x":
            names[node], values[node] = f"x{i}", float(g.inputs[b, i])
        elif kind == "z":
            layer = int(layer_of[i])
            names[node], values[node] = f"L{layer}·{i - starts[layer]}", float(g.latents[b, i])
        elif kind == "e":
            names[node], values[node] = f"err L{i}", float(np.abs(np.asarray(g.error[b, i])).max())
        else:
            names[node], values[node] = output_names[i], float(g.outputs[b, i])
    return names, values


def attribution_for_run(run, n_examples: int = N_EXAMPLES, seed: int = 0, n_candidates: int = 256) -> View | None:
    """The page for a run's newest residual MLP (None for any other model), its own neurons as the replacement.

    Of `n_candidates` fresh task inputs with an output to trace (target non-zero; each distinct input once), the
    `n_examples` where the neurons carry the largest share of the traced outputs' incoming edge mass: where the MLPs
    compute something (a compressed-computation output of a negative feature is the residual stream alone)."""
    model = run.model
    if getattr(model, "kind", None) != "residual_mlp":
        return None  # before the imports below: a transformer run's site does not pay for them
    import jax

    from toymi.circuits.attribution_graph import attribution_graph, neuron_transcoders
    from toymi.circuits.attribution_scores import where_outputs_matter

    batch = run.task.sample(jax.random.PRNGKey(seed), n_candidates)
    x, where = np.asarray(batch.x), where_outputs_matter(batch)
    _, first = np.unique(x, axis=0, return_index=True)  # boolean inputs repeat: each distinct input once
    candidates = np.sort(first[where[first].any(1)])
    if candidates.size == 0:
        return None
    layers = neuron_transcoders(model)
    g = attribution_graph(model, layers, x[candidates])
    through = np.abs(np.asarray(g.latent_output)).sum(1)  # [b, n_outputs]: mass from the neurons
    total = through + np.abs(np.asarray(g.residual + g.skip)).sum(1) + np.abs(np.asarray(g.error)).sum(1)
    share = (np.where(where[candidates], through, 0).sum(1)
             / np.maximum(np.where(where[candidates], total, 0).sum(1), 1e-30))
    rows = np.sort(candidates[np.argsort(-share, kind="stable")[:n_examples]])
    names = run.task.output_names() if hasattr(run.task, "output_names") else None  # a task may name its outputs
    note = (f"The model's own neurons (each layer's MLP) as the replacement: exact, so every error node is zero. "
            f"{len(rows)} examples of a fresh sample; the outputs traced are those whose target is non-zero.")
    return attribution_view(model, layers, x[rows], where[rows], names,
                            f"Attribution graphs: {run.directory.name}, step {run.model_step}", note)
