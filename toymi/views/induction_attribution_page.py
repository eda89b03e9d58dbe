"""The Attribution page of an induction model: both halves of the induction circuit, one example at a time.

At a repeated position t the next token is the one at s, after the current token's previous occurrence; an induction
head attends from t to s and copies the token there. Each example shows, side by side:

- **what the logit owes each position:** the right next token's logit at t traced back to the input positions
  through an attribution graph with attention frozen (`toymi.circuits.induction_graphs.induction_effects`: it can
  only credit what flows through values, so s), beside the logit lost when that position's token embedding is zeroed
  in the model itself (which also sees s − 1 and t);
- **why the head attends there:** the induction head's score from t to s split exactly over (query-side input,
  key-side input) pairs, everything before the head frozen (`toymi.circuits.qk_attribution`). The circuit puts it
  on the pair (t, s − 1): the current token meeting the key's previous token, moved there by a previous-token head;
- **inside the graph** (when an MLP comes before the head): the same score over pairs of the graph's nodes, the
  inputs, each earlier layer's latents at each position (one source per layer and position) and the error nodes
  (`nodes="graph_by_position"`), so a pair through an MLP is not credited back to the inputs it reads.

`induction_attribution_view(model, tokens, positions)` draws any sequences and positions;
`induction_page_for_run` a run's newest model on its first eval set (`attribution_for_run` picks it for induction
runs).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from toymi.views.page import View, example_menu_script

N_EXAMPLES = 6
MARKS = {"s": "#2ca02c", "s − 1": "#9467bd", "t": "#ff7f0e"}  # the mechanism's three positions


def induction_attribution_view(model, tokens, positions: Sequence[int], transcoders: Sequence = (),
                               head: tuple[int, int] | None = None, labels: Sequence[Sequence[str]] | None = None,
                               title: str = "Attribution: induction", note: str = "") -> View:
    """Both halves of the induction circuit at one repeated position per example, as a page (module docstring).

    **Arguments:**

    - `model`: a `Transformer`; `transcoders`: one per MLP layer (none for an attention-only model;
      `neuron_transcoders(model)` for its own ReLU or GELU neurons).
    - `tokens`: `[n_examples, pos]`; `positions`: one repeated position t per example (its token occurred before
      and the token after that occurrence comes next: `toymi.tasks.induction.repeated_positions`).
    - `head`: `(layer, head)` whose QK attribution is drawn (default: the head attending most from the repeated
      positions of `tokens` to their s, `toymi.circuits.qk_attribution.induction_head`).
    - `labels`: each example's token labels (default: the token ids); `title`, `note`: the heading and a line under it.

    **Returns:** a `View`.
    """
    from toymi.circuits.induction_graphs import induction_effects
    from toymi.circuits.qk_attribution import induction_head, mlps_before, qk_attribution
    from toymi.tasks.induction import induction_targets, repeated_positions

    tokens = np.asarray(model.check_inputs(tokens))
    positions = [int(t) for t in positions]
    if tokens.ndim != 2 or len(positions) != len(tokens):
        raise ValueError(f"tokens must be [n_examples, pos] with one position each; got tokens {tokens.shape} and "
                         f"{len(positions)} positions")
    repeated, sources = np.asarray(repeated_positions(tokens)), np.asarray(induction_targets(tokens))
    wrong = [(b, t) for b, t in enumerate(positions) if not 0 <= t < tokens.shape[1] or not repeated[b, t]]
    if wrong:
        raise ValueError(f"(example, position) {wrong} are not repeated positions: their next token is not the one "
                         "after their token's previous occurrence")
    labels = [[str(int(v)) for v in row] for row in tokens] if labels is None else [list(r) for r in labels]
    if len(labels) != len(tokens) or any(len(r) != tokens.shape[1] for r in labels):
        raise ValueError(f"labels must give one label per token of each of the {len(tokens)} examples")
    layer, h = induction_head(model, tokens)[:2] if head is None else head
    graph, ablation = induction_effects(model, tokens, transcoders)  # the default chunk: `toymi circuits` compiled it
    in_graph = mlps_before(transcoders, layer) > 0  # the score over the graph's nodes too
    figures, summaries = [], []
    for b, t in enumerate(positions):
        s = int(sources[b, t])
        qk = qk_attribution(model, tokens[b], layer, h, t, s, transcoders)
        pairs = np.asarray(qk.pairs, np.float64)
        owed, lost = graph[b, t, : t + 1], -ablation[b, t, : t + 1]
        fig = _figure(owed, lost, pairs, labels[b], t, s, (layer, h))
        share = np.abs(pairs).sum()
        summary = (f"t = {t} ({labels[b][t]}): next token {labels[b][s]}, copied from s = {s}. Graph: "
                   f"{abs(owed[s]) / max(np.abs(owed).sum(), 1e-30):.0%} of |attribution| on s; ablation: "
                   f"{abs(lost[s]) / max(np.abs(lost).sum(), 1e-30):.0%} on s. L{layer}H{h}'s score t → s "
                   f"{float(qk.score):.3g}: {abs(pairs[t, s - 1]) / max(share, 1e-30):.0%} of its |pair terms| on "
                   "(t, s − 1)")
        if in_graph:
            nodes = qk_attribution(model, tokens[b], layer, h, t, s, transcoders, nodes="graph_by_position")
            summary += graph_qk_heatmap(fig, np.asarray(nodes.pairs, np.float64), nodes.sources, labels[b], t, s)
        figures.append(fig.to_plotly_json())
        summaries.append(summary)
    return _page(figures, summaries, tokens, labels, positions, title, note, (layer, h),
                 graph=in_graph)


def _figure(owed, lost, pairs, labels: list[str], t: int, s: int, head: tuple[int, int]):
    """Bars per position (graph attribution, logit lost when ablated) and the head's QK pair terms as a heat map."""
    from plotly.subplots import make_subplots

    names = [f"{p}·{labels[p]}" for p in range(t + 1)]
    role = {s: "s", s - 1: "s − 1", t: "t"}
    fig = make_subplots(rows=2, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.12, vertical_spacing=0.1,
                        row_heights=[0.4, 0.6], specs=[[{}, {}], [{"colspan": 2}, None]], subplot_titles=(
        "the right next token's logit at t, per input position",
        f"L{head[0]}H{head[1]}'s score t → s over (query-side, key-side) input pairs"))
    for values, label, colour in ((owed, "graph, attention frozen", "#1f77b4"),
                                  (lost, "logit lost when its token embedding is zeroed", "#bbbbbb")):
        fig.add_bar(x=names, y=values, name=label, marker_color=colour, row=1, col=1,
                    hovertemplate="%{x}: %{y:.3g}<extra>" + label + "</extra>")
    ticks = [f'<span style="color:{MARKS[role[p]]}"><b>{n} ({role[p]})</b></span>' if p in role else n
             for p, n in enumerate(names)]  # the mechanism's three positions named and coloured
    fig.update_xaxes(tickvals=names, ticktext=ticks, row=1, col=1)
    keys, queries = names[: s + 1] + ["const"], names + ["const"]
    block = pairs[np.r_[: t + 1, -1]][:, np.r_[: s + 1, -1]]  # later sources cannot reach either side
    largest = float(np.abs(block).max()) or 1.0
    fig.add_heatmap(z=block, x=keys, y=queries, colorscale="RdBu", zmid=0, zmin=-largest, zmax=largest,
                    colorbar=dict(x=1.02, len=0.9, title="term"), row=1, col=2,
                    hovertemplate="query side %{y}, key side %{x}: %{z:.3g}<extra></extra>")
    fig.update_xaxes(title_text="key side", row=1, col=2)
    fig.update_yaxes(title_text="query side", autorange="reversed", row=1, col=2)
    fig.add_shape(type="rect", x0=s - 1.5, x1=s - 0.5, y0=t - 0.5, y1=t + 0.5, line=dict(color="black", width=2),
                  row=1, col=2)  # the pair the mechanism predicts: (t, s - 1)
    fig.update_layout(height=520, width=1240, barmode="group", plot_bgcolor="white",
                      margin=dict(t=60, b=40, l=40, r=20), legend=dict(orientation="h", y=-0.36, yanchor="top"))
    fig.update_yaxes(domain=[0, 1], row=1)  # one row unless `graph_qk_heatmap` adds the second
    fig.update_xaxes(visible=False, row=2, col=1)
    fig.update_yaxes(visible=False, row=2, col=1)
    return fig


def graph_qk_heatmap(fig, pairs, sources: Sequence[str], labels: list[str], t: int, s: int) -> str:
    """Add to `_figure`'s second row the head's score t → s over pairs of graph nodes (`sources`, as
    `qk_attribution(nodes="graph_by_position")` names them: "input p", "L0 latents @ p", "L0 error @ p",
    "constant"; error nodes left out when all their terms are zero, as the model's own neurons' are), boxing (input
    t, input s − 1) and (latents at t, latents at s); returns the summary's sentence on those two."""
    at = [-1 if n == "constant" else int(n.split()[-1]) for n in sources]  # each source's position
    errors = np.array([" error @ " in n for n in sources])
    keep_errors = bool(np.abs(pairs[errors]).any() or np.abs(pairs[:, errors]).any())
    shown = [i for i in range(len(sources)) if keep_errors or not errors[i]]
    queries = [i for i in shown if at[i] <= t]  # later sources reach neither side (causal)
    keys = [i for i in shown if at[i] <= s]
    names = [f"{at[i]}·{labels[at[i]]}" if n.startswith("input") else "const" if n == "constant" else n
             for i, n in enumerate(sources)]
    block = pairs[np.ix_(queries, keys)]
    largest = float(np.abs(block).max()) or 1.0
    fig.add_heatmap(z=block, x=[names[i] for i in keys], y=[names[i] for i in queries], colorscale="RdBu", zmid=0,
                    zmin=-largest, zmax=largest, row=2, col=1, colorbar=dict(x=1.02, y=0, yanchor="bottom", len=0.5,
                                                                             title="term"),
                    hovertemplate="query side %{y}, key side %{x}: %{z:.3g}<extra></extra>")
    latents = [i for i, n in enumerate(sources) if " latents @ " in n]
    boxes = {"(t, s − 1)": [(t, s - 1)],
             "(latents at t, latents at s)": [(q, k) for q in latents if at[q] == t for k in latents if at[k] == s]}
    total, said = max(float(np.abs(pairs).sum()), 1e-30), []
    for label, cells in boxes.items():
        for q, k in cells:
            r, c = queries.index(q), keys.index(k)
            fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, row=2, col=1,
                          line=dict(color="black", width=2))
        said.append(f"{sum(abs(pairs[q, k]) for q, k in cells) / total:.0%} on {label}")
    fig.update_xaxes(visible=True, title_text="key side (graph nodes)", tickfont=dict(size=8), row=2, col=1)
    fig.update_yaxes(visible=True, title_text="query side (graph nodes)", autorange="reversed", tickfont=dict(size=8),
                     domain=[0, 0.5], row=2, col=1)
    fig.update_yaxes(domain=[0.72, 1], row=1)
    fig.data[2].colorbar.update(y=0.72, yanchor="bottom", len=0.28)  # the input-pair map's, beside its own row
    fig.add_annotation(text="the same score over pairs of graph nodes (boxed: (t, s − 1) and (latents at t, "
                       "latents at s))", x=0.5, y=0.53, xref="paper", yref="paper", xanchor="center",
                       yanchor="bottom", showarrow=False, font=dict(size=16))
    fig.update_layout(height=1250, legend=dict(y=-0.06))
    return "; inside the graph " + " and ".join(said)


def _page(figures, summaries, tokens, labels, positions, title: str, note: str, head: tuple[int, int],
          graph: bool = False) -> View:
    import plotly.graph_objects as go

    options = "".join(f'<option value="{b}">example {b}: t = {t}</option>' for b, t in enumerate(positions))
    parts = [f'<p class="note">{html.escape(note)} Left: what the right next token\'s logit at t owes each '
             "position, traced through an attribution graph with attention frozen (it can only credit what the "
             "heads' values move: s, the token copied) beside the logit lost when that position's token embedding is "
             "zeroed in the model itself (which also sees s − 1 and t, the positions that make the head attend to s). "
             f"Right: why L{head[0]}H{head[1]} attends from t to s: its score split exactly over (query-side input, "
             "key-side input) pairs, everything before it frozen; an induction head puts it on the boxed pair "
             "(t, s − 1)." + (" Below: the same score over pairs of the attribution graph's nodes (the inputs, each "
                              "earlier layer's latents at each position, the error nodes), so a pair that runs "
                              "through an MLP is not credited back to the inputs the MLP reads." if graph else "")
             + " Hover for values.</p>",
             f'<p>example: <select id="example">{options}</select></p><p><b id="summary"></b></p>',
             ("induction", go.Figure(figures[0]))]
    data = {"figures": figures, "summaries": summaries, "tokens": tokens, "labels": labels, "positions": positions}
    return View("attribution", title, parts, data, example_menu_script("induction"))


def induction_page_for_run(run, replacement, n_examples: int = N_EXAMPLES) -> View | None:
    """An induction run's page: the first `n_examples` sequences of its first eval set with a repeated position, each
    at its last one (the most context), `replacement` (a `toymi.circuits.replacement.Replacement`: the model's own
    neurons, or trained transcoders) in place of its MLPs, if any (None when no sequence repeats anything). The head
    drawn is the one `toymi circuits`' report names (chosen on `HEAD_SEQUENCES` sequences, not on the few drawn)."""
    from toymi.circuits.qk_attribution import HEAD_SEQUENCES, induction_head
    from toymi.tasks.induction import repeated_positions
    from toymi.views.tokens import token_labels

    model = run.model
    name, batch = next(iter(run.task.eval_batches().items()))
    tokens = np.asarray(batch.tokens)
    repeated = np.asarray(repeated_positions(tokens))
    rows = np.flatnonzero(repeated.any(1))[:n_examples]
    if rows.size == 0:
        return None
    positions = [int(np.flatnonzero(repeated[b])[-1]) for b in rows]
    note = (f"{len(rows)} {name} sequences, each at its last repeated position t"
            + (f"; {replacement.note}." if replacement.transcoders else "; no MLP to replace."))
    head = induction_head(model, tokens[:HEAD_SEQUENCES])[:2]
    return induction_attribution_view(model, tokens[rows], positions, replacement.transcoders, head,
                                      labels=[token_labels(run.task, tokens[b]) for b in rows],
                                      title=f"Attribution: {run.directory.name}, step {run.model_step}", note=note)
