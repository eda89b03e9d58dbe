"""The SPD page: a parameter decomposition (`toymi.decompose.parameters`), one decomposed weight matrix at a time.

For the chosen matrix: the causal importance `g` of its subcomponents on probe inputs (the paper's picture of which
subcomponent each input needs: for TMS and residual MLPs one feature on at a time, for AND gates each gate's two
inputs too, for a transformer the mean over task inputs at each position), their norms `‖U_c V_cᵀ‖`, and, for the
subcomponent clicked, what it reads (`V_c`, over the matrix's input) and what it writes (`U_c`, over its output),
a residual MLP's residual-stream side per feature (`READ_OUT`: `W_E V_c`, `U_c W_U`); in attention matrices, beside
each name, the head holding most of its head-side vector (`truths_induction.head_shares`). Only subcomponents alive
by norm (above 10% of the largest) or important (g > 0.1) on some probe are drawn, ordered by the probe they matter
most for, so a clean decomposition shows as a diagonal. A table above gives every matrix's alive counts and how
closely its subcomponents sum to the weights.

`toymi view RUN --spd` trains a decomposition of the run's newest model (the model's `spd_defaults`, `QuickSPD`'s
steps and batch) and keeps it with the run (`keep_spd`, `toymi.decompose.parameters.saved`); every later `toymi view
RUN` shows it while it belongs to the newest model step (`spd_for_run`); `spd_view(model, params)` shows any.
"""

from __future__ import annotations

import dataclasses
import html

import numpy as np

from toymi.views.page import View

ALIVE_NORM, IMPORTANT = 0.1, 0.1  # drawn: norm above this fraction of the largest, or g above this on some probe

_SCRIPT = """
const D = toymiData, menu = document.getElementById('matrix');
let m = 0, cur = 0;
function show() {
  const M = D.matrices[m];
  Plotly.restyle('importance', {z: [M.ci], x: [M.ids], y: [D.rows]});
  Plotly.restyle('norms', {x: [M.ids], y: [M.norms], 'marker.color': [M.ids.map((_, i) => i === cur ? '#d62728' :
    '#1f77b4')]});
  Plotly.restyle('subcomponent', {y: [M.V[cur], M.U[cur]], x: [M.V[cur].map((_, i) => i), M.U[cur].map((_, i) => i)]});
  Plotly.relayout('subcomponent', {'title.text': `${M.name}, subcomponent ${M.ids[cur]}: what it reads (V) and ` +
    'writes (U)', 'annotations[0].text': M.V_axis, 'annotations[1].text': M.U_axis});
  document.getElementById('summary').textContent = M.summary;
  const best = M.ci.map(row => row[cur]), top = best.indexOf(Math.max(...best));
  const head = M.head_share[cur] === null ? '' : ` (head ${M.ids[cur].split(' H')[1]}: ` +
    `${(100 * M.head_share[cur]).toFixed(0)}% of its head-side energy)`;
  document.getElementById('selected').textContent = `subcomponent ${M.ids[cur]}: norm ${M.norms[cur]}, ` +
    `most important on ${D.rows[top]} (g = ${best[top]})` + head;
  menu.value = m;
}
menu.addEventListener('change', e => { m = +e.target.value; cur = 0; show(); });
document.getElementById('importance').on('plotly_click', e => { cur = e.points[0].pointNumber[1]; show(); });
document.getElementById('norms').on('plotly_click', e => { cur = e.points[0].pointNumber; show(); });
show();
"""


@dataclasses.dataclass(frozen=True)
class QuickSPD:
    """What `toymi view RUN --spd` trains: the model's `spd_defaults` at these steps and a batch of at most
    `batch_size` (TMS 5-2: ~6 alive of 20 at 4,000 steps of 128; longer runs get closer to the paper's 5)."""

    steps: int = 4000
    batch_size: int = 128
    seed: int = 0


def one_hot_probes(model, task) -> tuple[np.ndarray, list[str], str]:
    """One feature on at a time, at 1: the inputs of the paper's causal-importance plots (TMS, residual MLPs)."""
    del task
    n = model.config.n_features
    return np.eye(n, dtype=np.float32), [f"x{i}" for i in range(n)], "one feature on at a time (value 1)"


def position_probes(model, task, n: int = 64) -> tuple[np.ndarray, list[str], str]:
    """`n` task inputs (seed 0) of a sequence model: importance is then averaged over them at each position."""
    import jax

    from toymi.decompose.parameters.saved import task_input_sampler

    tokens = np.asarray(task_input_sampler(task, model.kind)(jax.random.PRNGKey(0), n))
    return tokens, [f"pos {p}" for p in range(tokens.shape[1])], f"mean over {n} task inputs, per position"


def gate_probes(model, task) -> tuple[np.ndarray, list[str], str]:
    """An AND-gate residual MLP's: each gate's two inputs on, then each input alone (`truths_and_gates`' patterns),
    so a gate's own subcomponents show on its row and not on its inputs' rows."""
    from toymi.tasks.and_gates import gate_patterns

    pairs = np.asarray(task.pairs)
    labels = [f"x{a} & x{b}" for a, b in pairs] + [f"x{i}" for i in range(model.config.n_features)]
    return np.asarray(gate_patterns(pairs, model.config.n_features)), labels, \
        "each gate's two inputs on, then each input alone (value 1)"


def residual_stream_sides(model, name: str) -> dict[str, tuple[np.ndarray, str]]:
    """A residual MLP's `W_in` reads and its `W_out` writes the residual stream, where the fixed embedding spreads
    each feature over all `d_model` dimensions (1,000 in the paper's model): that side is drawn per feature instead,
    `W_E V_c` (how much `V_c` reads each input feature: `x W_E V_c` is its inner activation) and `U_c W_U` (what it
    writes to each output, as the read-out sees it); the neuron side as it is."""
    if name.startswith("W_in"):
        return {"V": (np.asarray(model.W_E, np.float64).T, "W_E V_c: reads, per input feature")}
    return {"U": (np.asarray(model.W_U, np.float64), "U_c W_U: writes, per output")}


PROBES = {"tms": one_hot_probes, "residual_mlp": one_hot_probes, "transformer": position_probes}
# By model kind: the sides of its matrices drawn in another basis than the matrix's own (`{"V" | "U": (basis, axis
# title)}`, the vectors drawn as `V_cᵀ basis` / `U_cᵀ basis`); other kinds' are drawn as they are (`MATRIX_AXES`).
READ_OUT = {"residual_mlp": residual_stream_sides}
MATRIX_AXES = {"V": "V_c: reads (input index)", "U": "U_c: writes (output index)"}
# A task that states gates probes them too (`Task.known_circuit`, as the attribution page reads it).
CIRCUIT_PROBES = {("residual_mlp", "and_gates"): gate_probes}


def matrix_summaries(model, params, probes: np.ndarray, targets=None) -> list[dict]:
    """Per decomposed matrix: the drawn subcomponents' ids, importance `[probe row, drawn]`, norms, `U` and `V`
    columns, and the counts and faithfulness of the table (module docstring)."""
    from toymi.decompose.parameters.evaluate import causal_importances
    from toymi.decompose.parameters.targets import model_targets

    targets = model_targets(model) if targets is None else targets
    if len(targets) != len(params.components):
        raise ValueError(f"the decomposition has {len(params.components)} matrices; this model decomposes "
                         f"{[t.name for t in targets]}")
    out = []
    for t, comps, g in zip(targets, params.components, causal_importances(params, model, targets, probes)):
        g = np.asarray(g, np.float64)
        ci = g.reshape(-1, *g.shape[-2:]).mean(0) if g.ndim == 3 else g  # a sequence model's: mean over inputs
        norms = np.asarray(comps.norms(), np.float64)
        alive, important = norms > ALIVE_NORM * norms.max(), ci.max(0) > IMPORTANT
        drawn = np.flatnonzero(alive | important)
        drawn = drawn[np.lexsort((-ci[:, drawn].max(0), ci[:, drawn].argmax(0)))]
        W = np.asarray(t.get(model), np.float64)
        error = np.linalg.norm(W - np.asarray(comps.weight(), np.float64)) / max(np.linalg.norm(W), 1e-30)
        n_alive, n_important = int(alive.sum()), int(important.sum())
        heads = _heads(t.name, comps, model)
        vectors, axes = {"U": np.asarray(comps.U).T[drawn], "V": np.asarray(comps.V).T[drawn]}, dict(MATRIX_AXES)
        for side, (basis, axis) in READ_OUT.get(getattr(model, "kind", None), lambda m, n: {})(model, t.name).items():
            vectors[side], axes[side] = vectors[side] @ basis, axis
        out.append({"name": t.name, "site": t.site if t.layer is None else f"{t.site} {t.layer}",
                    "shape": list(W.shape), "C": len(norms), "alive": n_alive, "important": n_important,
                    "error": float(error), "ci": ci[:, drawn],
                    "ids": [f"c{i}" + ("" if heads is None else f" H{heads[i].argmax()}") for i in drawn],
                    "head_share": [None if heads is None else float(heads[i].max()) for i in drawn],
                    "norms": norms[drawn], **vectors, "V_axis": axes["V"], "U_axis": axes["U"],
                    "summary": f"{t.name} {list(W.shape)}: {n_alive} of {len(norms)} subcomponents alive by norm, "
                               f"{n_important} important on some probe; ‖W − Σ U Vᵀ‖ / ‖W‖ = {error:.2g}"})
    return out


def _heads(name: str, comps, model) -> np.ndarray | None:
    """`[C, head]` for an attention matrix: the share of each subcomponent's head-side energy in each head (`U_c`
    for `W_Q`, `W_K`, `W_V`, what it writes into the heads; `V_c` for `W_O`, what it reads of `z`); else None."""
    from toymi.decompose.parameters.truths_induction import MATRICES, head_shares

    matrix = name.split(".")[0]
    if matrix not in MATRICES:
        return None
    return head_shares(comps.V if matrix == "W_O" else comps.U, model.config.n_heads)


def _table(matrices: list[dict]) -> str:
    rows = "".join(f"<tr><td>{html.escape(m['name'])}</td><td>{html.escape(m['site'])}</td><td>{m['shape']}</td>"
                   f"<td>{m['C']}</td><td>{m['alive']}</td><td>{m['important']}</td><td>{m['error']:.2g}</td></tr>"
                   for m in matrices)
    return ("<table class='latents'><tr><th>matrix</th><th>reads</th><th>[out, in]</th><th>C</th>"
            "<th>alive by norm</th><th>important on a probe</th><th>‖W − Σ U Vᵀ‖ / ‖W‖</th></tr>" + rows
            + "</table>")


def _figures(first: dict, rows: list[str]) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    importance = go.Figure(go.Heatmap(z=first["ci"], x=first["ids"], y=rows, zmin=0, zmax=1, colorscale="Blues",
                                      hovertemplate="%{x} on %{y}: g = %{z:.3f}<extra></extra>"))
    importance.update_layout(height=max(260, min(18 * len(rows), 1600) + 120), margin=dict(t=40, b=40, l=70, r=10),
                             title="causal importance g (click a subcomponent)",
                             xaxis=dict(type="category"), yaxis=dict(autorange="reversed", type="category"))
    norms = go.Figure(go.Bar(x=first["ids"], y=first["norms"], hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    norms.update_layout(height=240, margin=dict(t=40, b=40, l=50, r=10), title="norm ‖U_c V_cᵀ‖",
                        xaxis=dict(type="category"))
    sub = make_subplots(rows=1, cols=2, subplot_titles=(first["V_axis"], first["U_axis"]))
    sub.add_trace(go.Bar(y=first["V"][0], marker_color="#2ca02c", name="V"), row=1, col=1)
    sub.add_trace(go.Bar(y=first["U"][0], marker_color="#9467bd", name="U"), row=1, col=2)
    sub.update_layout(height=300, margin=dict(t=70, b=40, l=50, r=10), showlegend=False, title=" ")
    return [("importance", importance), ("norms", norms), ("subcomponent", sub)]


def spd_view(model, params, task=None, probes=None, title: str = "SPD") -> View:
    """A decomposition's subcomponents as a page (module docstring).

    **Arguments:**

    - `model`: the decomposed model; `params`: one member's `SPDParams` (`train_spd(...).member(i)`).
    - `task`: the model's task (a transformer's probes are its inputs).
    - `probes`: `(inputs, row labels, what they are)`, default by model kind (`PROBES`), or by the circuit the task
      states (`CIRCUIT_PROBES`: AND gates).
    """
    kind = getattr(model, "kind", type(model).__name__)
    if probes is None:
        if kind not in PROBES:
            raise TypeError(f"the SPD page has no probes for a {kind} model (kinds: {', '.join(PROBES)})")
        probes = CIRCUIT_PROBES.get((kind, getattr(task, "known_circuit", None)), PROBES[kind])(model, task)
    x, rows, what = probes
    matrices = [m for m in matrix_summaries(model, params, np.asarray(x)) if m["ids"]]
    if not matrices:
        raise ValueError("no subcomponent is alive or important: nothing to show")
    options = "".join(f'<option value="{i}">{html.escape(m["name"])}</option>' for i, m in enumerate(matrices))
    figs = _figures(matrices[0], rows)
    parts = [f'<p class="note">Probes: {html.escape(what)}. Drawn: subcomponents alive by norm (&gt; {ALIVE_NORM:g} × '
             f"the largest) or with g &gt; {IMPORTANT:g} on some probe, ordered by the probe they matter most for. "
             "Click a subcomponent in the heat map or the norms to see its vectors.</p>", _table(matrices),
             f'<p>matrix <select id="matrix">{options}</select> <b id="summary"></b></p>', figs[0], figs[1],
             '<p id="selected"></p>', figs[2]]
    data = {"rows": rows, "matrices": [{k: m[k] for k in ("name", "ids", "ci", "norms", "U", "V", "V_axis", "U_axis",
                                                          "head_share", "summary")}
                                       for m in matrices]}
    return View("spd", title, parts, data, _SCRIPT)


def keep_spd(run, settings: QuickSPD = QuickSPD()):
    """`toymi view RUN --spd`: a decomposition of the run's newest model kept in `RUN/spd/`, loaded where one was
    kept with these settings, else trained now (`toymi.decompose.parameters.saved.spd_for_run`); returns it."""
    from toymi.decompose.parameters.defaults import spd_defaults
    from toymi.decompose.parameters.saved import spd_for_run
    from toymi.errors import ConfigError

    if hasattr(run, "members"):
        raise ConfigError("--spd needs a single run, not a sweep")
    try:
        batch = min(settings.batch_size, spd_defaults(run.model).batch_size)
    except TypeError as e:
        raise ConfigError(f"--spd: {e}") from None
    return spd_for_run(run, settings.steps, batch, settings.seed)


# How a kept decomposition compared the masked model's outputs (`SPDConfig.output_loss`), in a page title's words.
DISTANCE_NAMES = {"mse": "MSE", "kl": "next-token KL", "binary_kl": "binary KL (the sigmoids)",
                  "auto": "the model kind's default"}


def spd_for_run(run) -> View | None:
    """The page of the decomposition kept with the run for its newest model step (`keep_spd`, any settings), or
    None where there is none."""
    from toymi.decompose.parameters.saved import DIRECTORY, load_spd

    if not (run.directory / DIRECTORY).is_dir():
        return None  # before loading anything: most runs have none
    saved = load_spd(run.directory, run.model, run.model_step)
    if saved is None:
        return None
    s = saved.settings
    return spd_view(run.model, saved.params, run.task,
                    title=f"SPD of {run.directory.name} (step {saved.model_step}): C = {s['C']}, {s['steps']} steps "
                          f"of {s['batch_size']}, importance coefficient {s['importance_coef']:g}, p = {s['p']:g}, "
                          f"outputs compared by {DISTANCE_NAMES[s.get('output_loss', 'auto')]}; kept in {run.directory.name}/{DIRECTORY}/, trained in {saved.seconds:.0f} s")
