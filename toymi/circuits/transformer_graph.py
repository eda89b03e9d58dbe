"""Attribution graphs for transformers: circuit tracing with attention in the graph (Ameisen et al. 2025).

The replacement model swaps each layer's MLP for a transcoder (`toymi.decompose.transcoder`, one per layer; or the
model's own neurons, `neuron_transcoders`: exact) and, for one example, freezes everything nonlinear at its value
on that example: every layer's attention patterns, the normalisers' scales, and which latents are active (each
latent's value, or for total effects its gate `z / pre`). What is left is linear, so every target is exactly a sum
of edges plus a constant. The nodes:

    input p               that position's embedding (token + position), minus a baseline's when one is given
    latent (l, p, i)      transcoder l's latent i at position p: z = encode(mlp_input_l)[p, i]
    error (l, p)          mlp_out_l[p] - transcoder_l.predict(mlp_input_l[p]): what the replacement misses
    output (r, k)         the logit k at readout position r (the targets a graph is traced back from)

An edge s → t is s's activation times the derivative of t's pre-activation (a latent's `mlp_input @ W_enc + b_enc`,
or the logit) with respect to s in the frozen model: the virtual weight through the residual stream, the attention
heads' OV circuits under the frozen patterns, and the transcoders' skips, never through another latent (latents are
frozen values, not functions of the stream). Attention's QK side is not in the graph: the patterns are held fixed,
as circuit tracing does, so an input that matters only by moving attention gets no edge.

Everything runs through the model's own forward pass and sites: the patterns and scales are `patch`ed to their
clean values, the input nodes enter as a `steer` of `resid_pre` at layer 0, and each MLP's output is replaced by an
intervention (`_FrozenMLP`) that writes `z @ W_dec + b_dec + error (+ mlp_input @ W_skip)`. Derivatives are JAX's.

`baseline`: input nodes measured from another sequence's embeddings (e.g. the AND-gate task's every-feature-off
tokens). The baseline's own embeddings then sit in the constant, so an input equal to the baseline has no edges: an
AND-gate input that is off contributes nothing, as in the residual-MLP graphs (`toymi.circuits.attribution_graph`).

`summarise_transformer_graphs` averages, per output, over the examples where it matters: each input's total
attribution (every path, latents' gates frozen), its direct edge (attention and residual alone), and the shares of
the edge mass into the output from latents and error nodes; `score_summary` scores them against a known circuit
(with `toymi.circuits.attribution_scores`' AUC and rank agreement).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from toymi.decompose.transcoder import Transcoder, mlp_transcoder
from toymi.jit import jit
from toymi.model.interventions import patch, steer
from toymi.model.layer_stack import layer_of

_SCALE_SITES = ("ln1_scale", "ln2_scale")  # per layer; `ln_final_scale` is one


class TransformerGraph(NamedTuple):
    """One example's attribution graph (see the module docstring). Latent axes are `[layer, pos, n_latents]`
    (every layer's transcoder has the same width); outputs `[readout, d_vocab_out]`. Edges into inactive latents
    are zero."""

    tokens: Int[Array, " pos"]
    inputs: Float[Array, "pos d_model"]  # the input nodes' activations (embedding minus the baseline's)
    latents: Float[Array, "layer pos n"]  # z
    active: Bool[Array, "layer pos n"]  # z != 0: the latents that are nodes of this graph
    errors: Float[Array, "layer pos d_model"]  # the error nodes' activations
    input_latent: Float[Array, "pos layer pos n"]
    latent_latent: Float[Array, "layer pos n layer pos n"]  # from an earlier layer's latents only
    error_latent: Float[Array, "layer pos layer pos n"]
    input_output: Float[Array, "pos readout k"]  # the direct paths: residual stream and attention, no latent
    latent_output: Float[Array, "layer pos n readout k"]
    error_output: Float[Array, "layer pos readout k"]
    latent_bias: Float[Array, "layer pos n"]  # the constant part of each active latent's pre-activation
    output_bias: Float[Array, "readout k"]  # the constant part of each output (biases, the baseline's embedding)
    pre: Float[Array, "layer pos n"]  # the latents' pre-activations in the model
    outputs: Float[Array, "readout k"]  # the model's own logits at the readout positions

    def into_latents(self) -> Float[Array, "layer pos n"]:
        """Each latent's incoming edges summed, plus its constant part (its pre-activation where active)."""
        return (self.input_latent.sum(0) + self.latent_latent.sum((0, 1, 2)) + self.error_latent.sum((0, 1))
                + self.latent_bias)

    def into_outputs(self) -> Float[Array, "readout k"]:
        """Each output's incoming edges summed, plus its constant part (the model's logit)."""
        return (self.input_output.sum(0) + self.latent_output.sum((0, 1, 2)) + self.error_output.sum((0, 1))
                + self.output_bias)


def neuron_transcoders(model) -> tuple[Transcoder, ...]:
    """The model's own MLP neurons as transcoders, one per layer (exact: every error node is zero). ReLU MLPs
    only: a frozen GELU neuron is not a latent whose edges sum to its activation."""
    mlp_layers(model)
    if model.config.act_fn != "relu":
        raise ValueError(f"the model's own neurons stand in as transcoders only for a ReLU MLP; this one's act_fn "
                         f"is {model.config.act_fn!r} (train a transcoder per layer instead)")
    mlp = model.blocks.mlp
    return tuple(mlp_transcoder(mlp.W_in[l], mlp.b_in[l], mlp.W_out[l], mlp.b_out[l])
                 for l in range(model.config.n_layers))


def mlp_layers(model) -> int:
    """The number of MLP layers, after a one-line error unless `model` is a transformer with MLPs."""
    if getattr(model, "kind", None) != "transformer":
        raise TypeError(f"transformer attribution graphs need a transformer, got {type(model).__name__} "
                        "(residual MLPs: toymi.circuits.attribution_graph)")
    if model.config.attn_only:
        raise ValueError("this transformer is attention-only (d_mlp = 0): an attribution graph needs MLPs to replace")
    return model.config.n_layers


def as_replacements(model, transcoders: Transcoder | Sequence[Transcoder]) -> tuple[Transcoder, ...]:
    """`transcoders` as a tuple, one per layer, after one-line errors for a wrong count or widths, or layers of
    different widths."""
    n_layers = mlp_layers(model)
    layers = (transcoders,) if isinstance(transcoders, Transcoder) else tuple(transcoders)
    if len(layers) != n_layers:
        raise ValueError(f"give one transcoder per layer: the model has n_layers={n_layers}, got {len(layers)}")
    d = model.config.d_model
    for layer, tc in enumerate(layers):
        if not isinstance(tc, Transcoder):
            raise TypeError(f"the replacement of layer {layer} must be a Transcoder, got {type(tc).__name__}")
        if (tc.d_in, tc.d_out) != (d, d):
            raise ValueError(f"layer {layer}'s transcoder maps {tc.d_in} → {tc.d_out}; this model's MLP maps "
                             f"d_model={d} → {d}")
    widths = {tc.n_latents for tc in layers}
    if len(widths) > 1:
        raise ValueError(f"every layer's transcoder must have the same number of latents, got {sorted(widths)}")
    return layers


class _FrozenMLP(eqx.Module):
    """An intervention: layer `layer`'s `mlp_out` replaced by `z @ W_dec + b_dec + error`, plus the skip of the
    MLP input this pass computed (`x_in`), which keeps the skip a linear function of the stream."""

    transcoder: Transcoder
    z: Float[Array, "pos n"]
    error: Float[Array, "pos d_model"]
    x_in: Float[Array, "pos d_model"] | None
    layer: int = eqx.field(static=True)
    site: str = eqx.field(static=True, default="mlp_out")

    def apply(self, site: str, layer: int | None, x: Array, axes, n_layers: int) -> Array:
        del axes, n_layers
        if site != self.site or layer != self.layer:
            return x
        out = self.transcoder.decode(self.z) + self.error
        return out if self.x_in is None else out + self.x_in @ self.transcoder.W_skip


class _Frozen(NamedTuple):
    """One example's clean nonlinearities and node activations."""

    fixed: tuple  # patches of the patterns and normaliser scales
    inputs: Float[Array, "pos d_model"]
    latents: Float[Array, "layer pos n"]
    gates: Float[Array, "layer pos n"]  # z / pre (0 where pre = 0): the latents frozen as linear maps
    errors: Float[Array, "layer pos d_model"]
    pre: Float[Array, "layer pos n"]
    outputs: Float[Array, "readout k"]
    mlp_scales: tuple  # each layer's ln2 scale [pos], or None per layer without normalisers


def _mlp_input(model, acts, layer: int, fixed_scale) -> Array:
    """What layer `layer`'s MLP reads, `resid_mid` through `ln2` with its scale `fixed_scale` (None: no norm)."""
    resid = acts["resid_mid", layer]
    if fixed_scale is None:
        return resid
    norm = layer_of(model.blocks.ln2, layer)
    return norm.apply(norm.centre_and_scale(resid)[0], fixed_scale)


def _clean(model, layers, tokens, baseline, readout) -> _Frozen:
    n_layers = len(layers)
    names = {"pattern", "resid_mid", "embed", "mlp_out"}
    if model.config.has_norm:
        names |= {*_SCALE_SITES, "ln_final_scale"}
    if model.W_pos is not None:
        names.add("pos_embed")
    logits, acts = model.forward(tokens, frozenset(names))
    fixed = [patch("pattern", acts["pattern", l], layer=l) for l in range(n_layers)]
    scales = [None] * n_layers
    if model.config.has_norm:
        fixed += [patch(s, acts[s, l], layer=l) for s in _SCALE_SITES for l in range(n_layers)]
        fixed.append(patch("ln_final_scale", acts["ln_final_scale"]))
        scales = [acts["ln2_scale", l] for l in range(n_layers)]
    embedding = acts["embed"] + (acts["pos_embed"] if model.W_pos is not None else 0.0)
    if baseline is not None:
        base = model.W_E[baseline] + (model.W_pos[: baseline.shape[0]] if model.W_pos is not None else 0.0)
        embedding = embedding - base
    x_in = jnp.stack([_mlp_input(model, acts, l, scales[l]) for l in range(n_layers)])
    pre = jnp.stack([x_in[l] @ tc.W_enc + tc.b_enc for l, tc in enumerate(layers)])
    z = jnp.stack([tc.encode(x_in[l]) for l, tc in enumerate(layers)])
    errors = jnp.stack([acts["mlp_out", l] - tc.predict(x_in[l]) for l, tc in enumerate(layers)])
    gates = jnp.where(pre != 0, z / jnp.where(pre != 0, pre, 1.0), 0.0)
    return _Frozen(tuple(fixed), embedding, z, gates, errors, pre, logits[jnp.asarray(readout)], tuple(scales))


def _frozen_forward(model, layers, tokens, frozen: _Frozen, d_input, d_latent, d_error, readout: tuple[int, ...],
                    follow: bool):
    """The frozen model with the nodes moved by `d_input [pos, d_model]`, `d_latent [layer, pos, n]` and `d_error
    [layer, pos, d_model]`: `(pre [layer, pos, n], logits [readout, k])`, affine in the moves. `follow=False`:
    latents are frozen values (`frozen.latents + d_latent`), so derivatives are direct edges; `follow=True`:
    latents follow their pre-activations through their frozen gates (total effects through every path)."""
    scales = frozen.mlp_scales
    base = [*frozen.fixed, steer("resid_pre", d_input, layer=0)]
    needs_input = follow or any(tc.W_skip is not None for tc in layers)
    names = frozenset({"resid_mid"})
    replaced = []
    for l, tc in enumerate(layers):
        x_in = None
        if needs_input:  # this layer's MLP input, with the earlier layers already replaced
            _, acts = model.forward(tokens, names, (*base, *replaced))
            x_in = _mlp_input(model, acts, l, scales[l])
        z = frozen.latents[l] + d_latent[l]
        if follow:
            z = frozen.gates[l] * (x_in @ tc.W_enc + tc.b_enc) + d_latent[l]
        replaced.append(_FrozenMLP(tc, z, frozen.errors[l] + d_error[l], x_in if tc.W_skip is not None else None,
                                   layer=l))
    logits, acts = model.forward(tokens, names, (*base, *replaced))
    pre = jnp.stack([_mlp_input(model, acts, l, scales[l]) @ tc.W_enc + tc.b_enc for l, tc in enumerate(layers)])
    return pre, logits[jnp.asarray(readout)]


def _zeros(frozen: _Frozen):
    return jnp.zeros_like(frozen.inputs), jnp.zeros_like(frozen.latents), jnp.zeros_like(frozen.errors)


def _graph(model, layers, tokens, baseline, readout) -> TransformerGraph:
    frozen = _clean(model, layers, tokens, baseline, readout)

    def f(d_input, d_latent, d_error):
        return _frozen_forward(model, layers, tokens, frozen, d_input, d_latent, d_error, readout, follow=False)

    zero = _zeros(frozen)
    (j_pre, j_out) = jax.jacrev(f, argnums=(0, 1, 2))(*zero)  # each: derivatives w.r.t. (input, latent, error)
    const_pre, const_out = f(-frozen.inputs, -frozen.latents, -frozen.errors)  # every node removed
    active = frozen.latents != 0
    mask = active.astype(jnp.float32)

    def from_inputs(j):  # j[..., pos, d_model] → edges [pos, ...]
        return jnp.moveaxis(jnp.einsum("...pd,pd->...p", j, frozen.inputs), -1, 0)

    def from_latents(j):  # j[..., layer, pos, n] → [layer, pos, n, ...]
        return jnp.moveaxis(j * frozen.latents, (-3, -2, -1), (0, 1, 2))

    def from_errors(j):  # j[..., layer, pos, d_model] → [layer, pos, ...]
        return jnp.moveaxis(jnp.einsum("...lpd,lpd->...lp", j, frozen.errors), (-2, -1), (0, 1))

    return TransformerGraph(
        tokens=tokens, inputs=frozen.inputs, latents=frozen.latents, active=active, errors=frozen.errors,
        input_latent=from_inputs(j_pre[0]) * mask, latent_latent=from_latents(j_pre[1]) * mask,
        error_latent=from_errors(j_pre[2]) * mask, input_output=from_inputs(j_out[0]),
        latent_output=from_latents(j_out[1]), error_output=from_errors(j_out[2]),
        latent_bias=const_pre * mask, output_bias=const_out, pre=frozen.pre, outputs=frozen.outputs)


def transformer_graph(model, transcoders: Transcoder | Sequence[Transcoder], tokens: Int[Array, " pos"],
                      readout: Sequence[int] = (-1,), baseline: Int[Array, " pos"] | None = None) -> TransformerGraph:
    """The attribution graph of one sequence (module docstring).

    **Arguments:**

    - `model`: a `Transformer` with MLPs.
    - `transcoders`: one `Transcoder` per layer from its MLP's input to its output (`neuron_transcoders(model)`:
      the model's own neurons, exact).
    - `tokens`: one sequence `[pos]`.
    - `readout`: the positions whose logits are the graph's outputs (negative from the end).
    - `baseline`: tokens `[pos]` whose embeddings the input nodes are measured from; None: from zero.

    **Returns:** a `TransformerGraph`.
    """
    layers = as_replacements(model, transcoders)
    tokens = model.check_inputs(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"one sequence at a time: tokens must be [pos], got shape {tokens.shape}")
    readout = _positions(readout, tokens.shape[0])
    if baseline is not None:
        baseline = model.check_inputs(baseline)
        if baseline.shape != tokens.shape:
            raise ValueError(f"the baseline must be tokens of the same shape as the input {tokens.shape}, "
                             f"got {baseline.shape}")
    return _graph_jit(model, layers, tokens, baseline, readout)


@jit
def _graph_jit(model, layers, tokens, baseline, readout):
    return _graph(model, layers, tokens, baseline, readout)


def _positions(readout: Sequence[int], n: int) -> tuple[int, ...]:
    out = []
    for r in tuple(readout):
        if isinstance(r, bool) or not isinstance(r, int) or not -n <= r < n:
            raise IndexError(f"readout position {r!r} is outside a sequence of {n} positions")
        out.append(r % n)
    return tuple(out)


def completeness_gap(graph: TransformerGraph) -> dict[str, Float[Array, ""]]:
    """The largest violation of completeness, which must be rounding only: `"outputs"`, |edges into an output +
    its constant - the model's logit|; `"latents"`, |edges into an active latent + its constant - its
    pre-activation|."""
    gap = jnp.where(graph.active, jnp.abs(graph.into_latents() - graph.pre), 0.0)
    return {"outputs": jnp.max(jnp.abs(graph.into_outputs() - graph.outputs)), "latents": jnp.max(gap)}


# ---- a batch of graphs, averaged where each output matters ----------------------------------------------------------


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
        present, examples = np.asarray(self.present, np.float64), np.asarray(self.examples, np.float64)
        return np.where(present > 0, np.asarray(values, np.float64) * examples[:, None] / np.maximum(present, 1.0),
                        np.nan)


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
    readout = _positions(readout, length)
    n_outputs = len(readout) * model.config.d_vocab_out
    if where.shape != (n, n_outputs):
        raise ValueError(f"where must be [batch, readout · d_vocab_out] = [{n}, {n_outputs}], got {where.shape}")
    if baseline is not None:
        baseline = model.check_inputs(baseline)
        if baseline.shape != (length,):
            raise ValueError(f"the baseline must be one sequence [{length}], got shape {baseline.shape}")
    pad = -n % chunk
    valid = jnp.arange(n + pad) < n
    tokens = jnp.pad(tokens, ((0, pad), (0, 0)), mode="edge")
    where = jnp.pad(jnp.asarray(where, jnp.float32), ((0, pad), (0, 0))) * valid[:, None]
    return _summarise(model, layers, tokens.reshape(-1, chunk, length), where.reshape(-1, chunk, n_outputs),
                      valid.reshape(-1, chunk), baseline, readout)


def _one(model, layers, tokens, baseline, readout):
    """One example: edges into the outputs from every node, each input's total effect, and the constant."""
    frozen = _clean(model, layers, tokens, baseline, readout)

    def f(d_input, d_latent, d_error, follow):
        return _frozen_forward(model, layers, tokens, frozen, d_input, d_latent, d_error, readout, follow)[1]

    zero = _zeros(frozen)
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
    from toymi.circuits.attribution_scores import rank_agreement, score_against

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
