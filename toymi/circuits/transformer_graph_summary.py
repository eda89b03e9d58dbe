"""Transformer attribution graphs over a batch (`toymi.circuits.transformer_graph`), averaged per output where it
matters, and scored against a known circuit.

`summarise_transformer_graphs` keeps, per example, only what the scores need: the edges into the outputs from every
node (one reverse-mode pass per output) and each input's total attribution through every path, the latents' gates
frozen (one forward-mode pass per position). `score_summary` gives per-output AUCs, shares on the true inputs and
the rank agreement with the model's own ablations (`toymi.circuits.attribution_scores`' functions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from toymi.circuits.attribution_scores import mean_given_present, rank_agreement, score_against
from toymi.circuits.frozen_transformer import as_replacements, baseline_embedding, freeze, frozen_forward, no_moves
from toymi.circuits.transformer_graph import readout_positions
from toymi.jit import jit


class TransformerGraphSummary(NamedTuple):
    """Graphs averaged per output (flattened `[readout · k]`) over the examples where it matters."""

    attribution: Float[Array, "n_outputs pos"]  # mean |total attribution of input p|: every path, gates frozen
    direct: Float[Array, "n_outputs pos"]  # mean |direct edge input p → output| (attention and residual alone)
    latents: Float[Array, "n_outputs pos"]  # mean |total - direct|: the paths through at least one latent
    signed: Float[Array, "n_outputs pos"]  # mean signed total attribution
    latent_share: Float[Array, " n_outputs"]  # E Σ |latent → output edges| / E Σ |every edge into the output|
    error_share: Float[Array, " n_outputs"]  # the same for the error nodes
    present: Float[Array, "n_outputs pos"]  # examples where the output matters and input p's node is non-zero
    examples: Float[Array, " n_outputs"]
    completeness: Float[Array, ""]  # the largest |Σ edges into an output + constant - logit| seen

    def given_present(self, values):
        """`values` `[n_outputs, pos]` as means over the examples where the input node is non-zero too (see
        `toymi.circuits.attribution_scores.GraphSummary.given_present`; with a baseline, an input equal to it has
        a zero node and no attribution)."""
        return mean_given_present(values, self.present, self.examples)


def summarise_transformer_graphs(model, transcoders, tokens: Int[Array, "batch pos"],
                                 where: Bool[Array, "batch n_outputs"], readout: Sequence[int] = (-1,),
                                 baseline: Int[Array, " pos"] | None = None, chunk: int = 64
                                 ) -> TransformerGraphSummary:
    """Every row of `tokens`' graph (edges into the outputs only, and each input's total effect), averaged per
    output over the rows where `where [batch, readout · d_vocab_out]` is True; `chunk` rows at a time."""
    layers = as_replacements(model, transcoders)
    tokens = model.check_inputs(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be a batch [batch, pos], got shape {tokens.shape}")
    n, length = tokens.shape
    readout = readout_positions(readout, length)
    n_outputs = len(readout) * model.config.d_vocab_out
    if where.shape != (n, n_outputs):
        raise ValueError(f"where must be [batch, readout · d_vocab_out] = [{n}, {n_outputs}], got {where.shape}")
    base = baseline_embedding(model, baseline, length)
    pad = -n % chunk
    valid = jnp.arange(n + pad) < n
    tokens = jnp.pad(tokens, ((0, pad), (0, 0)), mode="edge")
    where = jnp.pad(jnp.asarray(where, jnp.float32), ((0, pad), (0, 0))) * valid[:, None]
    return _summarise(model, layers, tokens.reshape(-1, chunk, length), where.reshape(-1, chunk, n_outputs),
                      valid.reshape(-1, chunk), base, readout)


def _one(model, layers, tokens, baseline, readout):
    """One example: edges into the outputs from every node, each input's total effect, and the constant."""
    frozen = freeze(model, layers, tokens, baseline, readout)

    def f(d_input, d_latent, d_error, follow):
        return frozen_forward(model, layers, tokens, frozen, d_input, d_latent, d_error, readout, follow)[1]

    zero = no_moves(frozen)
    j_in, j_latent, j_error = jax.jacrev(lambda *d: f(*d, False), argnums=(0, 1, 2))(*zero)
    direct = jnp.einsum("rkpd,pd->prk", j_in, frozen.inputs)
    latent_edges = jnp.abs(j_latent * frozen.latents).sum((-3, -2, -1))  # [readout, k]
    error_edges = jnp.abs(jnp.einsum("rklpd,lpd->rklp", j_error, frozen.errors)).sum((-2, -1))

    def total(scale):  # input p moved by scale_p times its own node: the derivative is its total attribution
        return f(scale[:, None] * frozen.inputs, zero[1], zero[2], True)

    totals = jnp.moveaxis(jax.jacfwd(total)(jnp.zeros(tokens.shape[0])), -1, 0)  # [pos, readout, k]
    const = f(-frozen.inputs, -frozen.latents, -frozen.errors, False)
    gap = jnp.abs(direct.sum(0) + (j_latent * frozen.latents).sum((-3, -2, -1))
                  + jnp.einsum("rklpd,lpd->rk", j_error, frozen.errors) + const - frozen.outputs).max()
    mass = jnp.abs(direct).sum(0) + latent_edges + error_edges
    present = jnp.any(frozen.inputs != 0, -1)
    return _flat(totals), _flat(direct), _flat(latent_edges), _flat(error_edges), _flat(mass), present, gap


def _flat(a: Array) -> Array:
    """`[..., readout, k]` → `[..., readout · k]`: the outputs as one axis."""
    return a.reshape(*a.shape[:-2], -1)


@jit
def _summarise(model, layers, tokens, wheres, valids, baseline, readout):
    def step(sums, chunk):
        t, w, valid = chunk
        totals, direct, latent, error, mass, present, gap = jax.vmap(
            lambda row: _one(model, layers, row, baseline, readout))(t)
        new = {"attribution": jnp.einsum("bpk,bk->kp", jnp.abs(totals), w),
               "direct": jnp.einsum("bpk,bk->kp", jnp.abs(direct), w),
               "latents": jnp.einsum("bpk,bk->kp", jnp.abs(totals - direct), w),
               "signed": jnp.einsum("bpk,bk->kp", totals, w),
               "latent": (latent * w).sum(0), "error": (error * w).sum(0), "mass": (mass * w).sum(0),
               "present": jnp.einsum("bk,bp->kp", w, present.astype(jnp.float32)), "examples": w.sum(0)}
        gap = jnp.where(valid, gap, 0.0).max()
        return {k: sums[k] + v for k, v in new.items()} | {"gap": jnp.maximum(sums["gap"], gap)}, None

    n_outputs, length = wheres.shape[-1], tokens.shape[-1]
    zero = {**{k: jnp.zeros((n_outputs, length)) for k in ("attribution", "direct", "latents", "signed", "present")},
            **{k: jnp.zeros(n_outputs) for k in ("latent", "error", "mass", "examples")}, "gap": jnp.zeros(())}
    sums, _ = jax.lax.scan(step, zero, (tokens, wheres, valids))
    per = jnp.maximum(sums["examples"], 1.0)[:, None]
    mass = jnp.maximum(sums["mass"], 1e-30)
    return TransformerGraphSummary(
        attribution=sums["attribution"] / per, direct=sums["direct"] / per, latents=sums["latents"] / per,
        signed=sums["signed"] / per, latent_share=sums["latent"] / mass, error_share=sums["error"] / mass,
        present=sums["present"], examples=sums["examples"], completeness=sums["gap"])


def score_summary(s: TransformerGraphSummary, truth, ablation, inputs: Sequence[int]) -> dict:
    """A summary's scores against a known circuit `truth [n_outputs, n_inputs]` over the positions `inputs` (the
    AND-gate transformer: feature j at position j), per output (JSON-ready lists):

    - `auc`: ROC AUC of ranking the positions by mean |total attribution| against the true ones, the mean taken where
      the input node is non-zero (`given_present`; without a baseline, every example);
    - `on_true`, `on_true_direct`: the share of the mean |attribution| (of the direct edges alone) on true positions;
    - `rho`: Spearman correlation of that ranking with `ablation [n_outputs, n_inputs]` (the model's own input
      ablations, averaged where the output matters), compared where the input is present;
    - `latent_share`, `error_share`, and `completeness_gap`.
    """
    cols = np.asarray(inputs)
    ranked = s.given_present(s.attribution)[:, cols]
    truth, ablation = np.asarray(truth, bool), np.asarray(ablation, np.float64)
    if truth.shape != ranked.shape or ablation.shape != ranked.shape:
        raise ValueError(f"truth {truth.shape} and ablation {ablation.shape} must be [n_outputs, inputs] = "
                         f"{ranked.shape}")
    on_true = {name: score_against(np.asarray(getattr(s, name))[:, cols], truth, s.examples)["on_true"]
               for name in ("attribution", "direct")}
    ablated = np.where(np.asarray(s.present)[:, cols] > 0, ablation, np.nan)  # an input already off cannot be ablated
    return {"auc": score_against(ranked, truth, s.examples)["auc"].tolist(),
            "on_true": on_true["attribution"].tolist(), "on_true_direct": on_true["direct"].tolist(),
            "rho": rank_agreement(ranked, ablated).tolist(), "latent_share": np.asarray(s.latent_share).tolist(),
            "error_share": np.asarray(s.error_share).tolist(), "completeness_gap": float(s.completeness)}
