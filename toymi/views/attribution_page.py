"""The Attribution page: attribution graphs (circuit tracing), one example at a time, for the residual MLPs of any
depth (the AND-gate and compressed-computation models, `toymi.circuits.attribution_graph`) and for transformers
(the AND-gate transformer, `toymi.circuits.transformer_graph`: attention frozen, nodes per position).

Both kinds of graph are drawn from one flat form (`FlatGraph`: named input, latent, error and output nodes, edges as
source × target matrices). Nodes sit in rows: the example's inputs at the bottom (a residual MLP's active features;
a transformer's positions), then each layer's latents, each layer's error nodes at the right of its row, and the
outputs at the top. The graph is pruned backwards from the outputs shown (those whose
target is non-zero: a gate that is on, a compressed-computation output whose feature is active): an edge is kept when
it carries at least `min_share` of the edge mass (the sum of |edge|) into its target, and a latent is drawn when a
kept edge leaves it for a node already drawn; at most `max_edges`, the largest. An edge's width grows with |value|
(activation × virtual weight), its colour is its sign, and hovering its midpoint gives the value. A menu picks the
example.

`attribution_view(model, transcoders, x, where)` draws any replacement (e.g. transcoders trained in a notebook);
`attribution_for_run` a run's newest model with its own neurons as the replacement (exact: the error nodes are zero,
so no training is needed), or, for a transformer, transcoders trained on it (`toymi.circuits.replacement`: what
`toymi circuits RUN --transcoders` draws, and a SoLU MLP needs).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from toymi.views.circuits_page import edge_curve
from toymi.views.flat_graph import (
    MAX_EDGES, MIN_SHARE, FlatGraph, labels, layout, output_mass_drawn, pruned_edges, residual_flat,
    transformer_flat,
)
from toymi.views.page import View, example_menu_script

MAX_OUTPUTS = 4  # outputs drawn per example, the largest first
N_EXAMPLES = 6
COLOURS = {"positive": "#1f77b4", "negative": "#d62728"}
NODE_FILL = {"x": "#d9f2d9", "z": "#dde8f7", "e": "#fff0c2", "y": "#fde2cc"}  # input, latent, error node, output



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
    """Attribution graphs of a few examples of a residual MLP, one shown at a time, as a page.

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
    names_out = _checked(where, output_names, n_outputs, min_share, max_edges)
    g = attribution_graph(model, layers, x, weights)
    flats = [residual_flat(g, b, weights.sizes) for b in range(len(x))]
    shown = [", ".join(f"x{j}={x[b, j]:.2g}" for j in np.flatnonzero(x[b])) or "none" for b in range(len(x))]
    return _page(flats, where, shown, names_out, title, note, min_share, max_edges,
                 "Latents are named L<i>layer</i>·<i>index</i>; err L<i>l</i> is layer <i>l</i>'s error node (what "
                 "its transcoder misses).")


def transformer_attribution_view(model, transcoders, tokens, where, readout: Sequence[int] = (-1,),
                                 baseline=None, input_names: Sequence[str] | None = None,
                                 output_names: Sequence[str] | None = None, described: Sequence[str] | None = None,
                                 title: str = "Attribution graphs", note: str = "", min_share: float = MIN_SHARE,
                                 max_edges: int = MAX_EDGES) -> View:
    """Attribution graphs of a few sequences of a transformer (`toymi.circuits.transformer_graph`), one shown at a
    time, as a page.

    **Arguments:**

    - `model`: a `Transformer`; `transcoders`: one per MLP layer (`neuron_transcoders(model)`: its own ReLU or
      GELU neurons, exact; none for an attention-only model).
    - `tokens`: `[n_examples, pos]`, one graph each; `readout`: the positions whose logits are the outputs.
    - `where`: `[n_examples, len(readout) · d_vocab_out]` booleans, the outputs to trace back from (at most
      `MAX_OUTPUTS` each, the largest |output| first); every example needs one.
    - `baseline`: tokens `[pos]` the input nodes are measured from (None: from zero); a position holding the
      baseline's token then has no node.
    - `input_names`: one per position (default `p0`, `p1`, ...); `output_names`: one per output (default: `<logit
      index>@<readout position>`); `described`: a line per example saying what its input is (default: its tokens);
      `title`, `note`, `min_share`, `max_edges`: as `attribution_view`.

    **Returns:** a `View`.
    """
    from toymi.circuits.frozen_transformer import as_replacements
    from toymi.circuits.transformer_graph import transformer_graph

    layers = as_replacements(model, transcoders)
    tokens, where = np.asarray(tokens), np.asarray(where, bool)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [n_examples, pos], got shape {tokens.shape}")
    n_pos, readout = tokens.shape[1], tuple(readout)
    n_outputs = len(readout) * model.config.d_vocab_out
    if where.shape != (len(tokens), n_outputs):
        raise ValueError(f"where must be [n_examples, readout · d_vocab_out] = [{len(tokens)}, {n_outputs}], got "
                         f"{where.shape}")
    default_out = [f"{k}@{r}" for r in readout for k in range(model.config.d_vocab_out)]
    names_out = _checked(where, output_names if output_names is not None else default_out, n_outputs, min_share,
                         max_edges)
    names_in = list(input_names) if input_names is not None else [f"p{p}" for p in range(n_pos)]
    flats = [transformer_flat(transformer_graph(model, layers, t, readout, baseline), names_in) for t in tokens]
    shown = list(described) if described is not None else [" ".join(str(int(t)) for t in row) for row in tokens]
    if len(shown) != len(tokens):
        raise ValueError(f"{len(shown)} descriptions for {len(tokens)} examples")
    return _page(flats, where, shown, names_out, title, note, min_share, max_edges,
                 "Inputs are positions (their embeddings"
                 + (", measured from the baseline's: a position holding the baseline's token has none" if baseline
                    is not None else "") + "); latents are named L<i>layer</i>·<i>index</i>@<i>position</i>, "
                 "err L<i>l</i>@<i>position</i> is the error node there. Attention patterns are frozen: edges pass "
                 "through heads' OV circuits, never their QK.")


def _checked(where, output_names, n_outputs: int, min_share: float, max_edges: int) -> list[str]:
    """The output names (default `y0`, `y1`, ...) after one-line errors for an example with nothing to trace, a
    wrong number of names, or a pruning that cannot be."""
    if not where.any(1).all():
        raise ValueError(f"every example needs an output to trace back from; rows {np.flatnonzero(~where.any(1))} "
                         "have none")
    if not 0 < min_share < 1 or max_edges < 1:
        raise ValueError(f"min_share must be in (0, 1) and max_edges positive; got {min_share}, {max_edges}")
    names = list(output_names) if output_names is not None else [f"y{k}" for k in range(n_outputs)]
    if len(names) != n_outputs:
        raise ValueError(f"{len(names)} output names for {n_outputs} outputs")
    return names


def _page(flats: list[FlatGraph], where, inputs_shown: list[str], output_names: list[str], title: str, note: str,
          min_share: float, max_edges: int, naming: str) -> View:
    """The page of one flat graph per example: each traced back from its `where` outputs, a menu to pick one."""
    import plotly.graph_objects as go

    figures, summaries, kept = [], [], []
    for b, g in enumerate(flats):
        outputs = np.flatnonzero(where[b])
        outputs = outputs[np.argsort(-np.abs(g.outputs[outputs]), kind="stable")][:MAX_OUTPUTS]
        edges = pruned_edges(g, outputs.tolist(), min_share, max_edges)
        pos = layout(edges, outputs.tolist(), g)
        names, values = labels(pos, g, output_names)
        figures.append(_figure(edges, pos, names, values, g.n_layers).to_plotly_json())
        shown = ", ".join(f"{output_names[k]} = {float(g.outputs[k]):.3g}" for k in outputs)
        summaries.append(f"inputs: {inputs_shown[b]}; outputs traced: {shown}; {len(edges)} edges drawn, those into "
                         f"the outputs {output_mass_drawn(g, edges, outputs.tolist()):.0%} of their edge mass")
        kept.append([[names[s], names[t], v] for s, t, v in edges])
    options = "".join(f'<option value="{b}">example {b}</option>' for b in range(len(flats)))
    parts = [f'<p class="note">{html.escape(note)} Edges point up, from a node to the node it feeds '
             "(activation × virtual weight; into a latent through its frozen gate, 1 for an active ReLU); an edge is "
             f"drawn when it carries at least {min_share:.0%} of the edge mass into its target (at most {max_edges} "
             f"edges). {naming} Hover a node or an edge's midpoint for its value.</p>",
             f'<p>example: <select id="example">{options}</select></p><p><b id="summary"></b></p>',
             ("graph", go.Figure(figures[0]))]
    data = {"figures": figures, "summaries": summaries, "edges": kept}
    return View("attribution", title, parts, data, example_menu_script("graph"))


def attribution_for_run(run, n_examples: int = N_EXAMPLES, seed: int = 0, n_candidates: int = 256,
                        replacement=None) -> View | None:
    """The page for a run's newest residual MLP, AND-gate transformer (`_gate_transformer_page`) or induction model
    (`toymi.views.induction_attribution_page`; None for any other model), its own neurons as the replacement; a
    transformer's may be `replacement` instead (a `toymi.circuits.replacement.Replacement`, e.g. trained
    transcoders). Without one, a transformer whose own neurons are not exact (SoLU) traces through the transcoders
    `toymi circuits RUN --transcoders N` saved with the run for its newest step (`toymi.circuits.saved_replacement`),
    or has no page.

    Of `n_candidates` fresh task inputs with an output to trace (target non-zero; each distinct input once), the
    `n_examples` where the neurons carry the largest share of the traced outputs' incoming edge mass: where the MLPs
    compute something (a compressed-computation output of a negative feature is the residual stream alone)."""
    model = run.model
    if getattr(model, "kind", None) == "transformer":
        from toymi.circuits.saved_replacement import replacement_for_run

        if run.task.known_circuit not in ("and_gates", "induction"):  # the stated circuits a page draws
            return None
        replacement = replacement or replacement_for_run(run)
        if replacement is None:
            return None  # a SoLU MLP without transcoders saved with the run
        if run.task.known_circuit == "induction":
            from toymi.views.induction_attribution_page import induction_page_for_run

            return induction_page_for_run(run, replacement, n_examples)
        return _gate_transformer_page(run, replacement, n_examples, seed, n_candidates)
    if getattr(model, "kind", None) != "residual_mlp":
        return None  # before the imports below: other runs' sites do not pay for them
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


def _gate_transformer_page(run, replacement, n_examples: int, seed: int, n_candidates: int) -> View | None:
    """An AND-gate transformer run's page (None when no gate is on in the sample): the first `n_examples` distinct
    inputs of `n_candidates` with a gate on, each gate that is on traced back from the readout, the input nodes
    measured from the every-feature-off sequence (a feature that is off has no node), `replacement` (a
    `toymi.circuits.replacement.Replacement`) in place of the MLP."""
    import jax
    import jax.numpy as jnp

    from toymi.tasks.and_gates import encode_tokens

    model, task = run.model, run.task
    batch = task.sample(jax.random.PRNGKey(seed), n_candidates)
    x, where = np.asarray(batch.x), np.asarray(batch.y) != 0
    _, first = np.unique(x, axis=0, return_index=True)
    rows = np.sort(first[where[first].any(1)])[:n_examples]
    if rows.size == 0:
        return None
    n = task.n_features
    note = (f"{replacement.note[:1].upper()}{replacement.note[1:]}, attention frozen. {len(rows)} examples of a fresh sample; the gates "
            "traced are those that are on; each input is feature j's token at position j, measured from its "
            "off-token.")
    return transformer_attribution_view(
        model, replacement.transcoders, np.asarray(encode_tokens(jnp.asarray(x[rows]))), where[rows], (n,),
        encode_tokens(jnp.zeros(n)), [f"x{j}" for j in range(n)] + ["read"], task.output_names(),
        [", ".join(f"x{j}" for j in np.flatnonzero(row)) + " on" for row in x[rows]], f"Attribution graphs: {run.directory.name}, step {run.model_step}", note)
