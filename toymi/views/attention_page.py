"""The Attention page: every layer and head's pattern over the rendered tokens of chosen inputs, with scores.

Three figures share one selection (input, layer, head): the previous-token / duplicate-token / induction score of
every head (`toymi.dissect.attention`, averaged over the inputs shown), every head's pattern on the chosen input
(small multiples, each titled with its scores), and the selected head's pattern large, with token labels and hover
values. Clicking a head in either of the first two selects it; the menu above picks the input.
"""

from __future__ import annotations

import html

import equinox as eqx
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.views.page import View
from toymi.views.tokens import token_labels

N_INPUTS = 4  # eval inputs a run's page shows
SCORE_NAMES = {"previous_token": "previous-token", "duplicate_token": "duplicate", "induction": "induction"}

_SCRIPT = """
const D = toymiData, nH = D.n_heads, sel = {input: 0, layer: D.start[0], head: D.start[1]};
function show() {
  const p = D.patterns[sel.input], n = D.labels[sel.input].length, ticks = [...Array(n).keys()];
  Plotly.restyle('heads', {z: p.flat()}, [...Array(D.n_layers * nH).keys()]);
  Plotly.restyle('pattern', {z: [p[sel.layer][sel.head]], text: [D.text[sel.input]]});
  Plotly.relayout('pattern', {'title.text': `L${sel.layer}H${sel.head} on input ${sel.input}`,
    'xaxis.tickvals': ticks, 'xaxis.ticktext': D.labels[sel.input],
    'yaxis.tickvals': ticks, 'yaxis.ticktext': D.labels[sel.input]});
  const s = Object.keys(D.scores).map(k => `${D.score_names[k]} ${D.scores[k][sel.layer][sel.head].toFixed(3)}`);
  document.getElementById('selected').textContent = `selected: L${sel.layer}H${sel.head} (${s.join(', ')})`;
}
document.getElementById('scores').on('plotly_click', e => {
  sel.layer = e.points[0].y; sel.head = e.points[0].x; show(); });
document.getElementById('heads').on('plotly_click', e => {
  const t = e.points[0].curveNumber; sel.layer = Math.floor(t / nH); sel.head = t % nH; show(); });
document.getElementById('input').addEventListener('change', e => { sel.input = +e.target.value; show(); });
show();
"""


def _score_figure(scores: dict[str, np.ndarray]):
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(scores), subplot_titles=[SCORE_NAMES[k] for k in scores])
    for c, (kind, s) in enumerate(scores.items()):
        fig.add_heatmap(z=s, zmin=0, zmax=1, colorscale="Blues", showscale=c == 0, name=SCORE_NAMES[kind],
                        hovertemplate=f"L%{{y}}H%{{x}} {SCORE_NAMES[kind]}: %{{z:.3f}}<extra></extra>",
                        row=1, col=c + 1)
        fig.update_xaxes(title_text="head", dtick=1, row=1, col=c + 1)
        fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed", row=1, col=c + 1)
    fig.update_layout(height=260, width=760, margin=dict(t=40, b=40, l=50, r=10))
    return fig


def _heads_figure(pattern: np.ndarray, scores: dict[str, np.ndarray]):
    """Small multiples `[layer, head]` of one input's patterns, each titled with its scores."""
    from plotly.subplots import make_subplots

    n_layers, n_heads = pattern.shape[:2]
    titles = [f"L{l}H{h} " + " ".join(f"{SCORE_NAMES[k][0]}{scores[k][l, h]:.2f}" for k in scores)
              for l in range(n_layers) for h in range(n_heads)]
    fig = make_subplots(rows=n_layers, cols=n_heads, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.08)
    for l in range(n_layers):
        for h in range(n_heads):
            fig.add_heatmap(z=pattern[l, h], zmin=0, zmax=1, colorscale="Blues", showscale=False,
                            hovertemplate=f"L{l}H{h} q%{{y}}→k%{{x}}: %{{z:.3f}}<extra></extra>", row=l + 1, col=h + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_annotations(font_size=11)
    fig.update_layout(height=150 * n_layers + 40, width=145 * n_heads + 20, margin=dict(t=30, b=10, l=10, r=10))
    return fig


def _pattern_figure(n_pos: int):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=np.zeros((n_pos, n_pos)), zmin=0, zmax=1, colorscale="Blues",
                               hovertemplate="%{text}: %{z:.3f}<extra></extra>"))
    size = min(520, max(320, 160 + 14 * n_pos))
    fig.update_layout(height=size, width=size + 60, margin=dict(t=40, b=60, l=60, r=10),
                      xaxis=dict(title="key", tickmode="array", tickangle=0),
                      yaxis=dict(title="query", tickmode="array", autorange="reversed"))
    return fig


@eqx.filter_jit
def patterns_and_scores(model, tokens: Int[Array, "n pos"]) -> tuple[Float[Array, "n layer head q k"], dict]:
    """Every head's pattern on `tokens` and its `head_scores`, from one forward pass compiled as one program (run
    eagerly, the forward and the scores' einsums compile op by op: seconds)."""
    from toymi.dissect.attention import duplicate_token_score, induction_score, previous_token_score

    _, acts = model.run(tokens, capture=["pattern"])
    pattern = acts["pattern"]
    return pattern, {"previous_token": previous_token_score(pattern),
                     "duplicate_token": duplicate_token_score(pattern, tokens), "induction": induction_score(pattern, tokens)}


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def attention_view(model, tokens: Int[Array, "n pos"], labels: list[list[str]], title: str = "Attention") -> View:
    """Every head's attention on `tokens`, with previous-token / duplicate / induction scores, as a page.

    **Arguments:**

    - `model`: a model with a `pattern` site (a `Transformer`).
    - `tokens`: `[n, pos]` inputs to show.
    - `labels`: each input's token labels (`toymi.views.tokens.token_labels`), `[n][pos]`.
    - `title`: the page's heading.

    **Returns:** a `View` (shows itself in Jupyter; `.save(path)` writes it).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or len(labels) != tokens.shape[0] or any(len(r) != tokens.shape[1] for r in labels):
        raise ValueError(f"tokens must be [n, pos] with one label per token; got tokens {tokens.shape} and labels "
                         f"of lengths {[len(r) for r in labels]}")
    if "pattern" not in model.sites:
        raise ValueError(f"{type(model).__name__} has no attention (no `pattern` site): no attention page")
    pattern, scores = patterns_and_scores(model, tokens)
    pattern = np.asarray(pattern)  # [n, layer, head, q, k]
    scores = {k: np.asarray(scores[k]) for k in SCORE_NAMES}  # in SCORE_NAMES' order (jit returns dicts sorted)
    best = scores["induction"] if scores["induction"].max() > scores["previous_token"].max() else scores["previous_token"]
    start = [int(i) for i in np.unravel_index(np.argmax(best), best.shape)]
    text = [[[f"q{q} {r[q]} → k{k} {r[k]}" for k in range(len(r))] for q in range(len(r))] for r in labels]
    options = "".join(f'<option value="{i}">{i}: {html.escape(_short(" ".join(r)))}</option>'
                      for i, r in enumerate(labels))
    parts = [f'<p class="note">Scores are averaged over the {len(tokens)} inputs below. Click a head in the scores '
             "or in the small multiples to show it large; hover for values.</p>",
             f'<p>input: <select id="input">{options}</select> <b id="selected"></b></p>',
             '<div class="row">', ("scores", _score_figure(scores)), "</div>",
             '<div class="row">', ("heads", _heads_figure(pattern[0], scores)),
             ("pattern", _pattern_figure(tokens.shape[1])), "</div>"]
    data = {"patterns": pattern, "labels": labels, "text": text, "scores": scores, "score_names": SCORE_NAMES,
            "n_layers": pattern.shape[1], "n_heads": pattern.shape[2], "start": start}
    return View("attention", title, parts, data, _SCRIPT)


def attention_for_run(run) -> View | None:
    """The page for a run: its newest model on the first `N_INPUTS` inputs of the task's first eval set; None for a
    model without attention."""
    model = run.model
    if "pattern" not in model.sites:
        return None
    name, batch = next(iter(run.task.eval_batches().items()))
    # what the model reads: a batch's tokens, or tokens the task makes of its features (AND gates for a transformer)
    tokens = np.asarray(run.task.model_inputs(batch, model.kind)[:N_INPUTS])
    return attention_view(model, tokens, [token_labels(run.task, t) for t in tokens],
                          f"Attention: {run.directory.name}, step {run.model_step}, {name} inputs")
