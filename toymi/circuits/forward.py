"""The forward pass of a `Transformer` over its graph, with any edges replaced by other values (edge masks as data).

`graph_forward(model, tokens, other, ablate)` runs the model node by node. Each receiver's input is the residual
stream it would see, with every upstream sender's contribution moved towards that sender's `other` value by the
edge's weight:

    input_r = resid_r + sum_s ablate[s, r] * (other_s - current_s)

so `ablate` all zeros is the plain model, a one-hot `ablate` patches one edge (path patching of that edge), a 0/1
matrix removes a set of edges at once (ACDC's and a circuit's runs: `current_s` is the sender's output in this very
run, so removed edges compound), and fractional weights interpolate (EAP-IG, learned edge masks). Every receiver
normalises its own input (a head's q, k and v each see their own LayerNorm), as TransformerLens does with
`use_split_qkv_input`. The weights are traced: one compile serves every mask of one model shape.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.circuits.graph import Graph, build_graph
from toymi.jit import jit
from toymi.model.layer_stack import layer_of
from toymi.model.mlp import ACTIVATIONS
from toymi.model.norm import normalized

ABLATIONS = ("patch", "zero", "mean", "resample")


@functools.lru_cache(maxsize=32)
def graph_of(config, input_positions: int = 0) -> Graph:
    """The (cached) graph of a model config: one input node, or one per position for `input_positions` positions."""
    return build_graph(config, input_positions)


def graph_for(model, other: Float[Array, "*batch sender pos d_model"]) -> Graph:
    """The graph whose senders `other` holds values for: one input node, or one per position when `other` has that
    many more senders (`node_outputs(..., split_input=True)`). Shapes are static, so this is static under jit too."""
    whole = graph_of(model.config)
    n_senders, n_pos = other.shape[-3], other.shape[-2]
    if n_senders == len(whole.senders):
        return whole
    split = graph_of(model.config, n_pos)
    if n_senders != len(split.senders):
        raise ValueError(f"other holds {n_senders} senders; this model's graph has {len(whole.senders)} (one input "
                         f"node) or {len(split.senders)} (the input split over {n_pos} positions)")
    return split


def _attention(attn, x: Float[Array, "3 head pos d_model"]) -> Float[Array, "head pos d_model"]:
    """Each head's output `z @ W_O` from its own q, k and v inputs (no `b_O`)."""
    q = jnp.einsum("hpd,hde->phe", x[0], attn.W_Q) + attn.b_Q
    k = jnp.einsum("hpd,hde->phe", x[1], attn.W_K) + attn.b_K
    v = jnp.einsum("hpd,hde->phe", x[2], attn.W_V) + attn.b_V
    n = x.shape[2]
    causal = np.arange(n)[:, None] >= np.arange(n)[None, :]
    scores = jnp.where(causal, jnp.einsum("qhe,khe->hqk", q, k) / math.sqrt(q.shape[-1]), -jnp.inf)
    z = jnp.einsum("hqk,khe->qhe", jax.nn.softmax(scores, axis=-1), v)
    return jnp.einsum("qhe,hed->hqd", z, attn.W_O)


def graph_forward(
    model, tokens: Int[Array, " pos"], other: Float[Array, "sender pos d_model"],
    ablate: Float[Array, "sender receiver"],
) -> tuple[Float[Array, "pos d_vocab_out"], Float[Array, "sender pos d_model"]]:
    """One sequence through `model` with edge `(s, r)` moved by `ablate[s, r]` towards `other[s]`. The graph is the
    one whose senders `other` holds (`graph_for`).

    **Returns:** `(logits, outputs)`: the logits and every sender's output in this run (`[sender, pos, d_model]`).
    """
    graph = graph_for(model, other)
    ablate = ablate * jnp.asarray(graph.valid, ablate.dtype)  # an edge that does not exist moves nothing
    n = tokens.shape[0]
    resid = model.W_E[tokens] + (model.W_pos[:n] if model.W_pos is not None else 0.0)
    outs = list(resid[None] * jnp.eye(n)[:, :, None]) if graph.input_split else [resid]  # input[p]: position p

    def inputs(receivers) -> Array:  # receivers: an int or an int array; returns [*receivers, pos, d_model]
        k = len(outs)
        delta = jnp.einsum("s...,spd->...pd", ablate[:k, receivers], other[:k] - jnp.stack(outs))
        return resid + delta

    for layer in range(model.config.n_layers):
        block = layer_of(model.blocks, layer)
        result = _attention(block.attn, normalized(block.ln1, inputs(graph.qkv_receivers(layer))))
        outs.extend(result)
        resid = resid + result.sum(0) + block.attn.b_O
        if block.mlp is not None:
            mlp = block.mlp
            pre = normalized(block.ln2, inputs(graph.mlp_receiver(layer))) @ mlp.W_in + mlp.b_in
            out = ACTIVATIONS[mlp.act_fn](pre) @ mlp.W_out + mlp.b_out
            outs.append(out)
            resid = resid + out
    final = normalized(model.ln_final, inputs(graph.logits_receiver))
    return final @ model.W_U + model.b_U, jnp.stack(outs)


def batched_forward(model, tokens: Int[Array, "batch pos"], other: Float[Array, "batch sender pos d_model"],
                    ablate: Float[Array, "sender receiver"]) -> Float[Array, "batch pos d_vocab_out"]:
    """`graph_forward` over a batch (one `ablate` for every example, `other` per example)."""
    return jax.vmap(lambda t, o: graph_forward(model, t, o, ablate)[0])(tokens, other)


@jit
def node_outputs(model, tokens: Int[Array, "batch pos"],
                 split_input: bool = False) -> Float[Array, "batch sender pos d_model"]:
    """Every sender's output on each example of `tokens` (an unpatched run); with `split_input` (static), the input
    node split by position (`input[p]`: the embedding at position p, zero elsewhere)."""
    graph = graph_of(model.config, tokens.shape[-1] if split_input else 0)
    shape = (len(graph.senders), tokens.shape[-1], model.config.d_model)
    zeros = jnp.zeros(graph.valid.shape)
    return jax.vmap(lambda t: graph_forward(model, t, jnp.zeros(shape), zeros)[1])(tokens)


def ablation_values(model, source: Int[Array, "batch pos"], ablation: str, key: Array | None = None,
                    split_input: bool = False) -> Float[Array, "batch sender pos d_model"]:
    """What an ablated edge carries, per example: `patch` the sender's output on `source` (example b from example
    b), `zero`, `mean` (its mean over the `source` batch), or `resample` (its output on a randomly drawn example of
    `source`, drawn with `key`); with `split_input`, for one input sender per position."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
    if ablation == "resample" and key is None:
        raise ValueError("ablation='resample' needs a key (jax.random.key) to draw the examples")
    values = node_outputs(model, source, split_input)
    if ablation == "zero":
        return jnp.zeros_like(values)
    if ablation == "mean":
        return jnp.broadcast_to(values.mean(0), values.shape)
    if ablation == "resample":
        return values[jax.random.randint(key, (values.shape[0],), 0, values.shape[0])]
    return values
