"""Attribution graphs for transformers: circuit tracing with attention in the graph (Ameisen et al. 2025).

The replacement model swaps each layer's MLP for a transcoder (`toymi.decompose.transcoder`, one per layer; or the
model's own neurons, `neuron_transcoders`: exact) and, for one example, freezes everything nonlinear at its value
on that example: every layer's attention patterns, the normalisers' scales, and each latent's gate `z / pre` (1
for an active ReLU or TopK latent, 0 for an inactive one; a GELU neuron's value over its pre-activation). What is
left is linear, so every target is exactly a sum of edges plus a constant. The nodes:

    input p               that position's embedding (token + position), minus a baseline's when one is given
    latent (l, p, i)      transcoder l's latent i at position p: z = encode(mlp_input_l)[p, i]
    error (l, p)          mlp_out_l[p] - transcoder_l.predict(mlp_input_l[p]): what the replacement misses
    output (r, k)         the logit k at readout position r (the targets a graph is traced back from)

An edge s → t is s's activation times the derivative of t (a latent's frozen-gate value `gate · (mlp_input @ W_enc +
b_enc)`, for an active ReLU latent its pre-activation; or the logit) with respect to s in the frozen model: the
virtual weight through the residual stream, the attention heads' OV circuits under the frozen patterns, and the
transcoders' skips, never through another latent (latents are frozen values, not functions of the stream).
Attention's QK side is not in the graph: the patterns are held fixed, as circuit tracing does, so an input that
matters only by moving attention gets no edge.

The replacement and its freezing live in `toymi.circuits.frozen_transformer`: everything runs through the model's
own forward pass and sites, and derivatives are JAX's.

`baseline`: input nodes measured from another sequence's embeddings (e.g. the AND-gate task's every-feature-off
tokens). The baseline's own embeddings then sit in the constant, so an input equal to the baseline has no edges: an
AND-gate input that is off contributes nothing, as in the residual-MLP graphs (`toymi.circuits.attribution_graph`).

`toymi.circuits.transformer_graph_summary` averages graphs over a batch and scores them against a known circuit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from toymi.circuits.frozen_transformer import as_replacements, baseline_embedding, freeze, frozen_forward, no_moves
from toymi.decompose.transcoder import Transcoder
from toymi.jit import jit


class TransformerGraph(NamedTuple):
    """One example's attribution graph (see the module docstring). Latent axes are `[layer, pos, n_latents]`
    (every layer's transcoder has the same width); outputs `[readout, d_vocab_out]`. Edges into a latent go
    through its frozen gate: zero into an inactive one."""

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
    latent_bias: Float[Array, "layer pos n"]  # the constant part of each latent's value (through its gate)
    output_bias: Float[Array, "readout k"]  # the constant part of each output (biases, the baseline's embedding)
    pre: Float[Array, "layer pos n"]  # the latents' pre-activations in the model
    outputs: Float[Array, "readout k"]  # the model's own logits at the readout positions

    def into_latents(self) -> Float[Array, "layer pos n"]:
        """Each latent's incoming edges summed, plus its constant part: its value `z` (for a ReLU latent, its
        pre-activation where active)."""
        return (self.input_latent.sum(0) + self.latent_latent.sum((0, 1, 2)) + self.error_latent.sum((0, 1))
                + self.latent_bias)

    def into_outputs(self) -> Float[Array, "readout k"]:
        """Each output's incoming edges summed, plus its constant part (the model's logit)."""
        return (self.input_output.sum(0) + self.latent_output.sum((0, 1, 2)) + self.error_output.sum((0, 1))
                + self.output_bias)


def _graph(model, layers, tokens, baseline, readout) -> TransformerGraph:
    frozen = freeze(model, layers, tokens, baseline, readout)

    def f(d_input, d_latent, d_error):
        return frozen_forward(model, layers, tokens, frozen, d_input, d_latent, d_error, readout, follow=False)

    zero = no_moves(frozen)
    (j_pre, j_out) = jax.jacrev(f, argnums=(0, 1, 2))(*zero)  # each: derivatives w.r.t. (input, latent, error)
    const_pre, const_out = f(-frozen.inputs, -frozen.latents, -frozen.errors)  # every node removed
    active = frozen.latents != 0
    mask = frozen.gates  # edges into a latent in units of its value; for ReLU and TopK latents the 0/1 of `active`

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

    - `model`: a `Transformer` (attention-only: `transcoders` is empty, the graph has inputs and outputs alone).
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
    readout = readout_positions(readout, tokens.shape[0])
    return _graph_jit(model, layers, tokens, baseline_embedding(model, baseline, tokens.shape[0]), readout)


@jit
def _graph_jit(model, layers, tokens, baseline, readout):
    return _graph(model, layers, tokens, baseline, readout)


def readout_positions(readout: Sequence[int], n: int) -> tuple[int, ...]:
    out = []
    for r in tuple(readout):
        if isinstance(r, bool) or not isinstance(r, int) or not -n <= r < n:
            raise IndexError(f"readout position {r!r} is outside a sequence of {n} positions")
        out.append(r % n)
    return tuple(out)


def completeness_gap(graph: TransformerGraph) -> dict[str, Float[Array, ""]]:
    """The largest violation of completeness, which must be rounding only: `"outputs"`, |edges into an output +
    its constant - the model's logit|; `"latents"`, |edges into an active latent + its constant - its value| (an
    active ReLU latent's value is its pre-activation)."""
    gap = jnp.where(graph.active, jnp.abs(graph.into_latents() - graph.latents), 0.0)
    return {"outputs": jnp.max(jnp.abs(graph.into_outputs() - graph.outputs)), "latents": jnp.max(gap, initial=0.0)}
