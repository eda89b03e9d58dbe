"""Attribution graphs over a batch, scored against a known input → output circuit.

`summarise_graphs` builds every example's graph (`toymi.circuits.attribution_graph`) in chunks and keeps, per
output, the mean |attribution| of each input over the examples where that output matters (`where`, the caller's
choice: for an AND gate the examples where the gate is on, for compressed computation those where the output's own
feature is active), the error nodes' share of the edges into the output, each layer's latents' share, and per
latent its mean edges in and out while it is active; in a deeper model, also how much of what enters each layer's
latents comes from earlier layers' latents (the cross-layer edges), and each input's paths through chains of
latents. Absolute values are averaged (not signed means) so that an input pushing an output up on some examples and
down on others still counts as used, as `toymi.analysis.and_gates.input_ablation_effects` counts it.
`GraphSummary.given_present` turns such a mean into one over the examples where the input is on too: the plain mean
rewards an input for being present (an AND gate's inputs are on whenever it is), not for being used.

Against a truth `[n_outputs, n_features]` (True where an input feeds an output), `score_against` gives each
output's ROC AUC of its input ranking (`toymi.circuits.scoring.roc_auc`) and its fraction of |attribution| on true
inputs; `latent_carriers` counts, per output, the latents that carry it (their strongest incoming edges come from
exactly its true inputs and their strongest outgoing edge goes to it); `rank_agreement` compares the graph's
ranking with another measure of the same model (its ablation effects: is the graph faithful to the model, not only
to the task).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from toymi.circuits.attribution_graph import as_layers, attribution_graph, input_output, virtual_weights
from toymi.circuits.scoring import roc_auc
from toymi.jit import jit

GRAPH_SEED = 0xA77  # the task inputs graphs are averaged over (the attribution benchmark, `toymi circuits`)


def where_outputs_matter(batch) -> Bool[np.ndarray, "batch n_outputs"]:
    """Where each output of a residual-MLP task matters: its target is non-zero (an AND gate that is on; a
    compressed-computation output whose feature is active). Graphs are averaged, and traced back, from there."""
    return np.asarray(batch.y) != 0


class GraphSummary(NamedTuple):
    """Attribution graphs averaged over a batch (see the module docstring). Output-indexed arrays come first in
    the output axis, `[n_outputs, n_features]`, like `AndGates.facts()["circuit"]`."""

    attribution: Float[Array, "n_outputs n_features"]  # mean |latents + residual + skip| where the output matters
    latents: Float[Array, "n_outputs n_features"]  # mean |paths through the latents|
    chains: Float[Array, "n_outputs n_features"]  # mean |paths through two or more latents| (cross-layer)
    residual: Float[Array, "n_outputs n_features"]  # mean |residual-stream edge|
    skip: Float[Array, "n_outputs n_features"]  # mean |skip edge|
    signed: Float[Array, "n_outputs n_features"]  # mean signed total attribution
    error_share: Float[Array, " n_outputs"]  # E Σ_l |error_l edge| / E Σ |every edge into the output|
    layer_share: Float[Array, "n_outputs layer"]  # E Σ |edges from layer l's latents| / E Σ |every edge in|
    cross_layer_share: Float[Array, " layer"]  # Σ |latent → latent edges| / Σ |every edge into layer l's latents|
    examples: Float[Array, " n_outputs"]  # how many examples each output was averaged over
    latent_inputs: Float[Array, "n_latents n_features"]  # mean edge input → latent over examples where it is active
    latent_outputs: Float[Array, "n_latents n_outputs"]  # mean edge latent → output, same examples
    latent_active: Float[Array, " n_latents"]  # examples where each latent is active
    present: Float[Array, "n_outputs n_features"]  # examples where the output matters and the input is non-zero
    completeness: Float[Array, ""]  # the largest |Σ edges into an output + bias - output| seen

    def given_present(self, values) -> np.ndarray:
        """`values` `[n_outputs, n_features]`, a mean over the examples where each output matters (`attribution`,
        or ablation effects averaged over the same examples), as a mean over those where the input is non-zero too:
        what an input does when it is there. Exact, because an input that is 0 has zero attribution (activation ×
        weight) and zeroing it changes nothing. NaN where the pair was never seen together.

        Why: averaged over every example where an AND gate is on, its two inputs are on every time and any other
        input only as often as it happens to be, so a ranking by mean |attribution| puts the true inputs first for
        any attribution proportional to the activation (the input itself would score AUC 1): the plain mean
        measures presence, not use."""
        return mean_given_present(values, self.present, self.examples)


def mean_given_present(values, present, examples) -> np.ndarray:
    """`values [n_outputs, n_inputs]`, means over `examples [n_outputs]` examples, as means over the `present
    [n_outputs, n_inputs]` of them where the input is non-zero (NaN where it never was): `GraphSummary.given_present`
    and the transformer graphs' (`toymi.circuits.transformer_graph_summary`)."""
    present, examples = np.asarray(present, np.float64), np.asarray(examples, np.float64)
    return np.where(present > 0, np.asarray(values, np.float64) * examples[:, None] / np.maximum(present, 1.0),
                    np.nan)


def summarise_graphs(model, transcoders, x: Float[Array, "batch n_features"], where: Bool[Array, "batch n_outputs"],
                     chunk: int | None = None) -> GraphSummary:
    """Every row of `x`'s attribution graph, averaged per output over the rows where `where` is True (a
    `GraphSummary`); `transcoders` one per MLP layer (`toymi.circuits.attribution_graph.as_layers`). `chunk` rows
    at a time, so the per-example graphs never all exist at once (default: 256, fewer where the latent → latent
    edges of a deep model would pass ~64M numbers)."""
    layers = as_layers(model, transcoders)  # checks the model and transcoders
    weights = virtual_weights(model, layers)
    n, n_outputs = x.shape[0], weights.residual.shape[1]
    if where.shape != (n, n_outputs):
        raise ValueError(f"where must be [batch, n_outputs] = [{n}, {n_outputs}], got {where.shape}")
    if chunk is None:
        chunk = int(min(256, max(8, 2 ** 26 // weights.starts[-1] ** 2)))
    pad = -n % chunk
    valid = jnp.arange(n + pad) < n
    x = jnp.pad(jnp.asarray(x, jnp.float32), ((0, pad), (0, 0)))
    where = jnp.pad(jnp.asarray(where, jnp.float32), ((0, pad), (0, 0)))
    return _summarise(model, layers, weights, x.reshape(-1, chunk, x.shape[1]),
                      where.reshape(-1, chunk, n_outputs), valid.reshape(-1, chunk))


@jit
def _summarise(model, layers, weights, xs, wheres, valids):
    to_layer = jax.nn.one_hot(weights.latent_layer, len(weights.sizes))  # [N, layer]

    def step(sums, chunk):
        x, w, valid = chunk
        g = attribution_graph(model, layers, x, weights)
        io = input_output(g, weights)
        parts = {"attribution": io.total(), "latents": io.latents, "chains": io.chains, "residual": io.residual,
                 "skip": io.skip}
        from_layers = jnp.einsum("bik,il->bkl", jnp.abs(g.latent_output), to_layer)  # [b, n_outputs, layer]
        errors = jnp.abs(g.error).sum(1)
        mass = (from_layers.sum(-1) + jnp.abs(g.residual).sum(1) + jnp.abs(g.skip).sum(1)
                + errors)  # [b, n_outputs]: every edge into each output
        cross = jnp.abs(g.latent_latent).sum(1)  # [b, N]: edges from earlier layers' latents
        into = cross + jnp.abs(g.input_latent).sum(1) + jnp.abs(g.error_latent).sum(1) + jnp.abs(g.latent_bias)
        valid_f = valid.astype(jnp.float32)
        active = (g.active & valid[:, None]).astype(jnp.float32)
        gap = jnp.where(valid[:, None], jnp.abs(g.into_outputs() + g.output_bias - g.outputs), 0.0).max()
        new = {**{k: jnp.einsum("bjk,bk->kj", jnp.abs(v), w) for k, v in parts.items()},
               "signed": jnp.einsum("bjk,bk->kj", io.total(), w), "error": (errors * w).sum(0),
               "mass": (mass * w).sum(0), "examples": w.sum(0), "layers": jnp.einsum("bkl,bk->kl", from_layers, w),
               "cross": jnp.einsum("bi,b,il->l", cross, valid_f, to_layer),
               "into": jnp.einsum("bi,b,il->l", into, valid_f, to_layer),
               "latent_inputs": jnp.einsum("bji,bi->ij", g.input_latent, active),
               "latent_outputs": jnp.einsum("bik,b->ik", g.latent_output, valid_f),
               "latent_active": active.sum(0), "present": jnp.einsum("bk,bj->kj", w, (x != 0).astype(jnp.float32))}
        return {k: sums[k] + v for k, v in new.items()} | {"gap": jnp.maximum(sums["gap"], gap)}, None

    sums, _ = jax.lax.scan(step, _zero_sums(weights), (xs, wheres, valids))
    per_output = jnp.maximum(sums["examples"], 1.0)
    per_latent = jnp.maximum(sums["latent_active"], 1.0)[:, None]
    return GraphSummary(
        **{k: sums[k] / per_output[:, None] for k in ("attribution", "latents", "chains", "residual", "skip",
                                                       "signed")},
        error_share=sums["error"] / jnp.maximum(sums["mass"], 1e-30),
        layer_share=sums["layers"] / jnp.maximum(sums["mass"], 1e-30)[:, None],
        cross_layer_share=sums["cross"] / jnp.maximum(sums["into"], 1e-30), examples=sums["examples"],
        latent_inputs=sums["latent_inputs"] / per_latent, latent_outputs=sums["latent_outputs"] / per_latent,
        latent_active=sums["latent_active"], present=sums["present"], completeness=sums["gap"])


def _zero_sums(weights) -> dict:
    n_features, n_outputs = weights.residual.shape
    n_latents, n_layers = weights.latent_bias.shape[0], len(weights.sizes)
    z = jnp.zeros
    return {**{k: z((n_outputs, n_features)) for k in ("attribution", "latents", "chains", "residual", "skip",
                                                       "signed")},
            "error": z(n_outputs), "mass": z(n_outputs), "examples": z(n_outputs), "layers": z((n_outputs, n_layers)),
            "cross": z(n_layers), "into": z(n_layers),
            "latent_inputs": z((n_latents, n_features)), "latent_outputs": z((n_latents, n_outputs)),
            "latent_active": z(n_latents), "present": z((n_outputs, n_features)), "gap": z(())}


def score_against(attribution, truth, examples=None) -> dict[str, np.ndarray]:
    """Per output: `"auc"`, the ROC AUC of ranking its inputs by |attribution| against its true inputs, and
    `"on_true"`, the fraction of its |attribution| on them. NaN entries (pairs never seen: `given_present`) are left
    out of their row; a row never averaged over (`examples` 0), with no attribution at all, or left without a true
    or a false input gets NaN.

    **Arguments:**

    - `attribution`: `[n_outputs, n_features]`, e.g. `GraphSummary.attribution` or ablation effects.
    - `truth`: `[n_outputs, n_features]` booleans, True where an input feeds an output.
    - `examples`: `[n_outputs]` counts, e.g. `GraphSummary.examples`; None: every output counts.
    """
    a, truth = np.abs(np.asarray(attribution, np.float64)), np.asarray(truth, bool)
    if a.shape != truth.shape:
        raise ValueError(f"attribution {a.shape} and truth {truth.shape} must have the same shape")
    seen = np.ones(len(a), bool) if examples is None else np.asarray(examples) > 0
    auc, on_true = np.full(len(a), np.nan), np.full(len(a), np.nan)
    for k, (row, t) in enumerate(zip(a, truth)):
        keep = ~np.isnan(row)
        row, t = row[keep], t[keep]
        if seen[k] and row.sum() > 0 and t.any() and not t.all():
            auc[k], on_true[k] = roc_auc(row, t), row[t].sum() / row.sum()
    return {"auc": auc, "on_true": on_true}


def latent_carriers(summary: GraphSummary, truth) -> np.ndarray:
    """`[n_outputs]`: how many latents carry each output — latents active at least once whose `m` largest mean
    incoming edges are positive and come from exactly the output's `m` true inputs, and whose largest mean outgoing
    edge (positive) goes to that output. For an AND gate (a, b): a latent fed by both a and b that feeds gate k most."""
    truth = np.asarray(truth, bool)
    inputs, outputs = np.asarray(summary.latent_inputs), np.asarray(summary.latent_outputs)
    counts = np.zeros(truth.shape[0], int)
    for i in np.flatnonzero(np.asarray(summary.latent_active) > 0):
        k = int(np.argmax(outputs[i]))
        m = int(truth[k].sum())
        top = np.argsort(-inputs[i], kind="stable")[:m]
        if outputs[i, k] > 0 and (inputs[i, top] > 0).all() and set(top) == set(np.flatnonzero(truth[k])):
            counts[k] += 1
    return counts


def rank_agreement(a, b) -> np.ndarray:
    """Per row, the Spearman correlation of `|a|` and `|b|` `[n_outputs, n_features]` (average ranks for ties),
    over the entries that are not NaN in either; NaN for a row left with fewer than 3 entries or constant."""
    from scipy.stats import rankdata

    a, b = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))
    out = np.full(len(a), np.nan)
    for k, (x, y) in enumerate(zip(a, b)):
        keep = ~(np.isnan(x) | np.isnan(y))
        if keep.sum() < 3:
            continue
        rx, ry = rankdata(x[keep]), rankdata(y[keep])
        rx, ry = rx - rx.mean(), ry - ry.mean()
        norm = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
        if norm > 0:
            out[k] = (rx * ry).sum() / norm
    return out


@jit
def output_ablation_effects(model, x: Float[Array, "batch n_features"], where: Bool[Array, "batch n_outputs"]
                            ) -> Float[Array, "n_outputs n_features"]:
    """Mean |Δ output k| when input j is set to 0, over the rows of `x` where `where[:, k]`: the model's own
    circuit, measured without any replacement (for outputs read as values, e.g. compressed computation; AND gates
    use `toymi.analysis.and_gates.input_ablation_effects`, on the gate probability)."""
    clean = model(x)
    w = where.astype(jnp.float32)
    # one input at a time, reduced at once: never [n_features, batch, n_outputs] in memory
    change = jax.lax.map(lambda j: (jnp.abs(model(x.at[:, j].set(0.0)) - clean) * w).sum(0), jnp.arange(x.shape[1]))
    return change.T / jnp.maximum(w.sum(0), 1.0)[:, None]


def graph_scores(s: GraphSummary, truth, output_effects, effects=None) -> dict[str, list | float]:
    """Every score of a `GraphSummary` against a truth `[n_outputs, n_features]` (lists per output, JSON-ready).

    AUCs come from means over the examples where the input is on too (`given_present`: presence alone cannot rank
    an input first), shares on the true inputs from the plain means (of the attribution or effect the examples
    actually carry). `output_effects`: the model's own input ablations on the outputs the graph attributes
    (`output_ablation_effects`); `effects`: optionally the same on what the task reads (an AND gate's
    probability).

    Keys: `auc`, `auc_latents` (paths through the latents alone), `on_true`, `on_true_latents`,
    `on_true_given_present`, `output_ablation_auc` / `_on_true` (and `ablation_auc` / `_on_true` with `effects`),
    `rho` (Spearman of the graph's ranking with the output ablation's), `auc_unconditioned`, `auc_presence_baseline`
    (inputs ranked by how often they are on where the output matters), `error_share`, `carriers`
    (`latent_carriers`), `examples`, `completeness_gap`, `layer_share`, `cross_layer_share`, `chain_share` (the
    share of the true inputs' attribution through chains of latents).
    """
    truth = np.asarray(truth, bool)
    parts = {"graph": s.attribution, "latents": s.latents, "output_ablation": output_effects}
    if effects is not None:
        parts["ablation"] = effects
    given = {k: score_against(s.given_present(v), truth, s.examples) for k, v in parts.items()}
    plain = {k: score_against(v, truth, s.examples) for k, v in parts.items()}
    out = {"auc": given["graph"]["auc"], "auc_latents": given["latents"]["auc"],
           "on_true": plain["graph"]["on_true"], "on_true_latents": plain["latents"]["on_true"],
           "output_ablation_auc": given["output_ablation"]["auc"],
           "output_ablation_on_true": plain["output_ablation"]["on_true"],
           "on_true_given_present": given["graph"]["on_true"],
           "rho": rank_agreement(s.given_present(s.attribution), s.given_present(output_effects)),
           "auc_unconditioned": plain["graph"]["auc"],
           "auc_presence_baseline": score_against(s.present, truth, s.examples)["auc"],
           "error_share": s.error_share, "carriers": latent_carriers(s, truth), "examples": s.examples,
           "layer_share": s.layer_share, "cross_layer_share": s.cross_layer_share,
           "chain_share": _share_on_truth(s.chains, s.attribution, truth)}
    if effects is not None:
        out |= {"ablation_auc": given["ablation"]["auc"], "ablation_on_true": plain["ablation"]["on_true"]}
    return {k: np.asarray(v).tolist() for k, v in out.items()} | {"completeness_gap": float(s.completeness)}


def _share_on_truth(part, whole, truth) -> np.ndarray:
    """Per output, `part`'s mean |attribution| from its true inputs as a share of `whole`'s (NaN where it has none)."""
    part, whole = (np.where(truth, np.asarray(a, np.float64), 0.0).sum(1) for a in (part, whole))
    return np.where(whole > 0, part / np.where(whole > 0, whole, 1.0), np.nan)
