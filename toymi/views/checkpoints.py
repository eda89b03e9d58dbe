"""A checkpoint slider over a task's progress measures: Fourier spectra for grokking, head scores otherwise.

`checkpoint_figure(run)` picks the measure from the task and the model: modular addition with an MLP gets Nanda et
al.'s measures (`toymi.analysis.modular.progress`, one vmapped call over the checkpoint series); any other model with
attention gets previous-token / duplicate / induction head scores (`toymi.dissect.attention`) on the task's own eval
inputs at every checkpoint. The slider is Plotly's: each step swaps the plotted arrays, all embedded in the page.
"""

from __future__ import annotations

import numpy as np

from toymi.tasks.modular import ModularArithmetic

N_SCORE_INPUTS = 64  # eval sequences head scores are averaged over, per checkpoint


def _slider(steps, updates: list[list]) -> dict:
    """A Plotly slider with one step per checkpoint; `updates[i]` are the `update` method's args for checkpoint i."""
    return dict(active=len(steps) - 1, currentvalue=dict(prefix="checkpoint: step "), pad=dict(t=40),
                steps=[dict(label=str(int(s)), method="update", args=u) for s, u in zip(steps, updates)])


def _vline(step: float) -> list[dict]:
    return [dict(type="line", xref="x2", yref="y2 domain", x0=step, x1=step, y0=0, y1=1,
                 line=dict(color="black", dash="dot"))]


def fourier_figure(steps, measures: dict[str, np.ndarray], key_freqs, p: int):
    """Grokking: `W_E`'s and the neuron-logit map's Fourier spectra at the chosen checkpoint (bars), beside the
    restricted / excluded / train / test loss over every checkpoint (a dotted line marks the chosen one)."""
    from plotly.subplots import make_subplots

    freqs = np.arange(measures["embed_spectrum"].shape[1])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Fourier norms per frequency (0: constant)",
                                                         f"losses (key frequencies {', '.join(map(str, map(int, key_freqs)))})"))
    last = len(steps) - 1
    for name in ("embed_spectrum", "neuron_logit_spectrum"):
        fig.add_bar(x=freqs, y=measures[name][last], name=name.replace("_", " "), row=1, col=1)
    for name in ("train_loss", "test_loss", "restricted_loss", "excluded_loss"):
        fig.add_scatter(x=steps, y=measures[name], name=name.replace("_", " "), mode="lines+markers", row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text=f"frequency k (of Z_{p})", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    updates = [[{"y": [measures["embed_spectrum"][i].tolist(), measures["neuron_logit_spectrum"][i].tolist()]},
                {"shapes": _vline(s)}, [0, 1]] for i, s in enumerate(steps)]
    fig.update_layout(height=460, shapes=_vline(steps[last]), sliders=[_slider(steps, updates)],
                      margin=dict(t=60, b=40))
    return fig


def head_score_figure(steps, scores: dict[str, np.ndarray]):
    """Head scores `[checkpoint, layer, head]` per kind: heatmaps at the chosen checkpoint, and every head's
    induction score over training."""
    from plotly.subplots import make_subplots

    kinds = list(scores)
    fig = make_subplots(rows=1, cols=len(kinds) + 1, subplot_titles=[k.replace("_", "-") for k in kinds]
                        + ["induction score over training"], horizontal_spacing=0.06)
    last = len(steps) - 1
    for c, kind in enumerate(kinds):
        fig.add_heatmap(z=scores[kind][last], zmin=0, zmax=1, colorscale="Blues", showscale=c == 0,
                        colorbar=dict(x=-0.05, xanchor="right", thickness=10),  # left: the legend is right
                        hovertemplate="L%{y}H%{x}: %{z:.3f}<extra></extra>", row=1, col=c + 1)
        fig.update_xaxes(title_text="head", dtick=1, row=1, col=c + 1)
    n_layers, n_heads = scores[kinds[0]].shape[1:]
    fig.update_yaxes(tickvals=list(range(n_layers)), ticktext=[f"L{l}" for l in range(n_layers)],
                     autorange="reversed")
    fig.update_yaxes(autorange=True, tickvals=None, ticktext=None, row=1, col=len(kinds) + 1)
    for layer in range(n_layers):
        for head in range(n_heads):
            fig.add_scatter(x=steps, y=scores["induction"][:, layer, head], name=f"L{layer}H{head}",
                            mode="lines+markers", row=1, col=len(kinds) + 1)
    axis = len(kinds) + 1
    vline = [dict(type="line", xref=f"x{axis}", yref=f"y{axis} domain", x0=s, x1=s, y0=0, y1=1,
                  line=dict(color="black", dash="dot")) for s in steps]
    updates = [[{"z": [scores[k][i].tolist() for k in kinds]}, {"shapes": [vline[i]]}, list(range(len(kinds)))]
               for i in range(len(steps))]
    fig.update_layout(height=420, shapes=[vline[last]], sliders=[_slider(steps, updates)], margin=dict(t=60, b=40))
    return fig


def _modular_measures(run, steps):
    from toymi.analysis.modular.key_frequencies import neuron_key_frequencies
    from toymi.analysis.modular.progress import progress_measures

    keys = neuron_key_frequencies(run.checkpoint(steps[-1]), run.task)
    measures = progress_measures(run.checkpoint_series(steps), run.task, keys, chunk_size=8)
    return fourier_figure(np.asarray(steps), {k: np.asarray(v) for k, v in measures.items()}, keys, run.task.p)


def _head_score_measures(run, steps):
    from toymi.views.attention_page import SCORE_NAMES, patterns_and_scores

    batch = next(iter(run.task.eval_batches().values()))
    tokens = run.task.model_inputs(batch, "transformer")[:N_SCORE_INPUTS]  # the tokens a transformer reads
    per_step = [patterns_and_scores(run.checkpoint(s), tokens)[1] for s in steps]  # compiled once, for every step
    scores = {k: np.stack([np.asarray(d[k]) for d in per_step]) for k in SCORE_NAMES}
    return head_score_figure(np.asarray(steps), scores)


def checkpoint_figure(run, steps=None):
    """The slider figure for this run's task and model, and a one-line caption; None where no measure applies (a
    model without attention, and not modular addition)."""
    steps = list(run.steps if steps is None else steps)
    if not steps:
        return None
    model = run.checkpoint(steps[-1])
    task = run.task
    if isinstance(task, ModularArithmetic) and task.op == "+" and not getattr(model.config, "attn_only", True):
        return _modular_measures(run, steps), ("Nanda et al.'s progress measures over every checkpoint; the slider "
                                               "picks the checkpoint whose Fourier spectra are shown.")
    if "pattern" in model.sites:
        return _head_score_measures(run, steps), (f"head scores on {N_SCORE_INPUTS} of the task's eval inputs at "
                                                  "every checkpoint; the slider picks the checkpoint shown.")
    return None
