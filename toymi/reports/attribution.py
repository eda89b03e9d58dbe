"""The attribution-graph parts of `toymi circuits RUN`.

- A residual MLP (the AND-gate and compressed-computation models, any depth), `attribution_report`: its graphs
  through its own neurons (exact: no error nodes), averaged where each output matters and scored against the circuit
  its task states, beside the model's own input ablations: `table.md`, `scores.json` and `attribution.html` (the
  Attribution page: one example's graph at a time).
- An AND-gate transformer or an induction run, beside its edge discovery (`gate_attribution_report`,
  `induction_attribution_report`): graphs with attention frozen, through a `toymi.circuits.replacement` (the model's
  own ReLU or GELU neurons, or transcoders trained on it), scored against what the task states: `attribution.md`,
  `attribution.json`, `attribution.html`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from toymi.circuits.qk_attribution import HEAD_SEQUENCES
from toymi.circuits.replacement import Replacement
from toymi.errors import ConfigError

N_EXAMPLES = 8192


def attribution_report(run, out: Path, n_examples: int = N_EXAMPLES) -> str:
    """Score `run`'s newest residual MLP's attribution graphs against its task's circuit (`task.facts()["circuit"]`,
    `[output, input]`) on `n_examples` fresh inputs, each output averaged where its target is non-zero; write the
    report into `out` and return its markdown table."""
    from toymi.circuits.attribution_graph import neuron_transcoders
    from toymi.circuits.attribution_scores import (
        GRAPH_SEED, graph_scores, output_ablation_effects, summarise_graphs, where_outputs_matter,
    )
    from toymi.views.attribution_page import attribution_for_run

    model, task = run.model, run.task
    truth = task.facts().get("circuit")
    if truth is None:
        raise ConfigError(f"{type(task).__name__} states no input → output circuit to score attribution graphs "
                          "against (its facts() has no 'circuit')")
    start = time.perf_counter()
    batch = task.sample(jax.random.PRNGKey(GRAPH_SEED), n_examples)
    where = where_outputs_matter(batch)
    s = summarise_graphs(model, neuron_transcoders(model), batch.x, where)
    scores = graph_scores(s, truth, output_ablation_effects(model, batch.x, where))
    seconds = time.perf_counter() - start

    def mean(key):
        return float(np.nanmean(np.asarray(scores[key], np.float64)))

    layers = np.nanmean(np.asarray(scores["layer_share"], np.float64), axis=0)
    cross = scores["cross_layer_share"][1:]
    table = "\n".join([
        f"{run.directory.name}, step {run.model_step}: attribution graphs through the model's own neurons (exact), "
        f"{n_examples} fresh inputs, each output averaged where its target is non-zero", "",
        "| outputs | AUC mean / min | on true: graph / output ablation | ρ graph vs output ablation | edge mass into "
        "the outputs from each layer's neurons | cross-layer share into later layers | chains share | seconds |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(truth)} | {mean('auc'):.3f} / {np.nanmin(scores['auc']):.3f} | {mean('on_true'):.3f} / "
        f"{mean('output_ablation_on_true'):.3f} | {mean('rho'):.3f} | {' / '.join(f'{v:.3f}' for v in layers)} | "
        f"{' / '.join(f'{v:.3f}' for v in cross) or '–'} | {mean('chain_share'):.3f} | {seconds:.1f} |", ""])
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    (out / "scores.json").write_text(json.dumps({"run": str(run.directory), "step": run.model_step,
                                                 "n_examples": n_examples, "seconds": seconds, **scores}))
    page = attribution_for_run(run)
    if page is not None:
        page.save(out / "attribution.html")
    return table


def gate_attribution_report(run, out: Path, replacement: Replacement | None, n_examples: int | None = None) -> str:
    """`toymi circuits RUN` for an AND-gate transformer, beside its edge discovery: attribution graphs through
    `replacement` (`toymi.circuits.replacement`; `toymi.circuits.gate_graphs`), each gate traced back from the
    readout over `n_examples` (default `N_EXAMPLES`) fresh inputs where it is on, input nodes measured from zero and
    from the all-off sequence, scored against the gate's two inputs. Writes `attribution.md`, `attribution.json` and
    the page `attribution.html` into `out`; returns the table (a one-line note when `replacement` is None: a SoLU MLP
    without trained transcoders)."""
    from toymi.circuits.attribution_scores import GRAPH_SEED
    from toymi.circuits.gate_graphs import BASELINES, gate_graph_scores

    model, task = run.model, run.task
    if replacement is None:
        return _not_drawn(out)
    n_examples = N_EXAMPLES if n_examples is None else n_examples
    start = time.perf_counter()
    batch = task.sample(jax.random.PRNGKey(GRAPH_SEED), n_examples)
    scores = gate_graph_scores(model, task, replacement.transcoders, batch)
    seconds = time.perf_counter() - start

    def mean(values):
        return float(np.nanmean(np.asarray(values, np.float64)))

    ablation = scores["ablation"]
    lines = [f"\nAttribution graphs through {replacement.description}, attention frozen: each of the "
             f"{task.n_gates} gates traced back from the readout over {n_examples} fresh inputs, averaged where it "
             f"is on ({seconds:.1f} s{_trained(replacement)})\n",
             "| input nodes measured from | AUC mean / min | gates at AUC 1 | on true: graph / logit ablation | on "
             "true, direct edges | ρ graph vs ablation | latent share | error share |", "|---" * 8 + "|"]
    for name in BASELINES:
        r = scores[name]
        auc = np.asarray(r["auc"], np.float64)
        lines.append(f"| {'zero' if name == 'none' else 'the all-off sequence'} | {mean(auc):.3f} / "
                     f"{np.nanmin(auc):.3f} | {int((auc == 1.0).sum())} of {len(auc)} | {mean(r['on_true']):.3f} / "
                     f"{mean(ablation['on_true']):.3f} | {mean(r['on_true_direct']):.3f} | {mean(r['rho']):.3f} | "
                     f"{mean(r['latent_share']):.3f} | {mean(r['error_share']):.3f} |")
    table = "\n".join(lines) + "\n"
    _write(run, out, table, replacement, {"n_examples": n_examples, "seconds": seconds, **scores})
    return table


def induction_attribution_report(run, out: Path, replacement: Replacement | None,
                                 n_sequences: int = HEAD_SEQUENCES) -> str:
    """`toymi circuits RUN` for an induction run, beside its edge discovery: at every repeated position of its first
    eval set's first `n_sequences` sequences, the right token's logit traced back with attention frozen, against the
    model's own token ablations (`toymi.circuits.induction_graphs`), MLPs (if any) replaced by `replacement`: the
    shares on the copied position s, on s - 1 and t (why s is attended) and elsewhere. Writes `attribution.md`,
    `attribution.json` and the page `attribution.html` into `out`; returns the table (a one-line note when
    `replacement` is None: a SoLU MLP without trained transcoders)."""
    from toymi.circuits.induction_graphs import PARTS, induction_attribution
    from toymi.circuits.qk_attribution import induction_head, induction_qk, mlps_before

    model = run.model
    if replacement is None:
        return _not_drawn(out)
    name, batch = next(iter(run.task.eval_batches().items()))
    tokens, transcoders = batch.tokens[:n_sequences], replacement.transcoders
    start = time.perf_counter()
    scores = induction_attribution(model, tokens, transcoders)
    layer, head, attention = induction_head(model, tokens)
    scores["qk"] = {"layer": layer, "head": head, "attention": attention,
                    **induction_qk(model, tokens, layer, head, transcoders)}
    if mlps_before(transcoders, layer):  # its latents and error nodes as sources of their own
        scores["qk_graph"] = induction_qk(model, tokens, layer, head, transcoders, nodes="graph")
    seconds = time.perf_counter() - start
    lines = [f"\nThe right token's logit at every repeated position of {len(tokens)} {name} sequences, traced back "
             f"to the positions up to it ({seconds:.1f} s with the QK table{_trained(replacement)}"
             f"{'' if not transcoders else f'; MLPs replaced by {replacement.description}'}): s holds the token "
             "copied, s − 1 and t make the induction head attend to it\n",
             "| measured by | traced logits | share on s | on s − 1 | on t | elsewhere | s the largest |",
             "|---|---|---|---|---|---|---|"]
    for how, label in (("graph", "graph, attention frozen"), ("ablation", "ablation (token embedding zeroed)")):
        v = scores[how]
        lines.append(f"| {label} | {v['traced']} | " + " | ".join(f"{v[k]:.3f}" for k in PARTS)
                     + f" | {v['top_is_s']:.3f} |")
    lines += _qk_table(scores, layer, head, attention)
    table = "\n".join(lines) + "\n"
    _write(run, out, table, replacement, {"seconds": seconds, **scores})
    return table


def _qk_table(scores: dict, layer: int, head: int, attention: float) -> list[str]:
    """The induction report's QK table: a row by input position, and one by graph node where `scores` has it."""
    from toymi.circuits.qk_attribution import QK_GRAPH, QK_PARTS

    lines = [f"\nWhy it attends: the induction head L{layer}H{head} (the head attending most from t to s: mean "
             f"{attention:.3f}), its score from t to s split over (query-side, key-side) source pairs, everything "
             "before it frozen (QK attribution): by input position (each with what the earlier latents compute "
             "from it), and where an MLP comes before the head, by the graph's nodes (its latents at each "
             "position and its error nodes sources of their own; t and s − 1 then the input nodes alone)\n",
             "| sources | traced scores | share on (t, s − 1) | query t, any key | any query, key s − 1 | "
             "with the constant | with latents | (latents at t, latents at s) | with error nodes | "
             "(t, s − 1) the largest |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, label in (("qk", "input positions"), ("qk_graph", "graph nodes")):
        if key in scores:
            qk = scores[key]
            graph = [f"{qk[k]:.3f}" if k in qk else "–" for k in QK_GRAPH]
            lines.append(f"| {label} | {qk['traced']} | " + " | ".join(f"{qk[k]:.3f}" for k in QK_PARTS[:-1])
                         + f" | {' | '.join(graph)} | {qk[QK_PARTS[-1]]:.3f} |")
    return lines


NOT_DRAWN = ("\nAttribution graphs: not drawn (the model's own neurons stand in for its MLP only where their "
             "activation is elementwise, ReLU or GELU; pass --transcoders N to train N-latent transcoders per MLP "
             "layer and trace through them).\n")


def _write(run, out: Path, table: str, replacement: Replacement, scores: dict) -> None:
    """A transformer's graphs: `attribution.md`, `attribution.json` (with what replaced the MLPs) and the
    Attribution page through the same replacement, `attribution.html`."""
    from toymi.views.attribution_page import attribution_for_run

    out.mkdir(parents=True, exist_ok=True)
    (out / "attribution.md").write_text(table.lstrip("\n"))
    (out / "attribution.json").write_text(json.dumps({"run": str(run.directory), "step": run.model_step,
                                                      **replacement.as_dict(), **scores}))
    page = attribution_for_run(run, replacement=replacement)
    if page is not None:  # None: no example to draw (no gate on, nothing repeated)
        page.save(out / "attribution.html")


def _not_drawn(out: Path) -> str:
    """`NOT_DRAWN`, also as `attribution.md` in `out` (and no `attribution.json` or `.html`), so an earlier
    report's graphs in the same directory cannot pass for this one's."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "attribution.md").write_text(NOT_DRAWN.lstrip("\n"))
    for stale in ("attribution.json", "attribution.html"):
        (out / stale).unlink(missing_ok=True)
    return NOT_DRAWN


def _trained(replacement: Replacement) -> str:
    if replacement.loaded_from:
        return f"; the transcoders loaded from {replacement.loaded_from} (trained in {replacement.seconds:.1f} s)"
    return f"; the transcoders trained in {replacement.seconds:.1f} s" if replacement.seconds else ""
