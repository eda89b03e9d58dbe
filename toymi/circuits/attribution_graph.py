"""Attribution graphs through transcoders (circuit tracing, Ameisen et al. 2025) for a residual MLP of any depth.

The replacement model swaps each layer's MLP for a trained transcoder (`toymi.decompose.transcoder`: one per layer,
a per-layer transcoder graph) and, per example, freezes which latents are active. With the nonlinearities frozen
every remaining map is linear, so each output is exactly a sum of edges, and an edge from node s to node t is s's
activation times the virtual weight from s to t's pre-activation. For the residual MLP
(`toymi.model.residual_mlp`: the AND-gate and compressed-computation models, 1 to 3 layers)

    r_0     = x @ W_E                                            input features → residual stream
    z_l     = act(r_l @ W_enc_l + b_enc_l)                       layer l's latents, active where z > 0
    err_l   = mlp_out_l(r_l) - transcoder_l.predict(r_l)         layer l's error node: what its transcoder misses
    r_{l+1} = r_l (I + W_skip_l) + z_l @ W_dec_l + b_dec_l + err_l   (= r_l + mlp_out_l: the model's own stream)
    y       = r_L @ W_U + b_U

the nodes are the input features `x_j`, every layer's active latents `z_i` (concatenated in layer order: latent
axis `N = Σ_l n_latents_l`), one error node per layer and the outputs `y_k`. With
`P(a→b) = Π_{a≤m<b} (I + W_skip_m)`, the residual stream's (and skips') linear map from layer a's input to layer
b's (the identity without skips):

    input j        → latent i (layer l):      x_j · (W_E P(0→l) W_enc_l)[j, i]
    latent i' (l') → latent i (l > l'):       z_i' · (W_dec_l' P(l'+1→l) W_enc_l)[i', i]
    error (l')     → latent i (l > l'):       err_l' · (P(l'+1→l) W_enc_l)[:, i]
    latent i (l)   → output k:                z_i · (W_dec_l P(l+1→L) W_U)[i, k]
    input j        → output k:                x_j · (W_E W_U)[j, k]  (the residual stream)
                                         and  x_j · (W_E (P(0→L) - I) W_U)[j, k]  (through skips only)
    error (l)      → output k:                err_l · (P(l+1→L) W_U)[:, k]

The edges into an active latent sum to it minus its bias (`b_enc_l` plus earlier layers' `b_dec` carried to it),
and the edges into each output sum to it minus the constant `Σ_l b_dec_l P(l+1→L) W_U + b_U` (completeness:
`completeness_gap`). `input_output` gives each input's total effect on each output through every path (exact,
because the latents' gates are frozen), split into paths through at least one latent, the residual stream, and
skips alone.

`toymi.circuits.attribution_scores` averages the graphs over a batch and scores them against the tasks' known
circuits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from toymi.decompose.transcoder import Transcoder, mlp_transcoder
from toymi.jit import jit

_CAPTURE = frozenset({"resid_pre", "mlp_out"})


class VirtualWeights(eqx.Module):
    """The replacement model's linear maps between nodes, computed once per (model, transcoders); see the module
    docstring for each. Latent axes run over every layer's latents in layer order (`sizes` per layer)."""

    input_latent: Float[Array, "n_features N"]  # W_E P(0→l) W_enc_l
    latent_latent: Float[Array, "N N"]  # W_dec_l' P(l'+1→l) W_enc_l for l' < l, zero elsewhere
    latent_output: Float[Array, "N n_outputs"]  # W_dec_l P(l+1→L) W_U
    residual: Float[Array, "n_features n_outputs"]  # W_E W_U
    skip: Float[Array, "n_features n_outputs"]  # W_E (P(0→L) - I) W_U; zeros without skips
    error_latent: Float[Array, "layer d_model N"]  # P(l'+1→l) W_enc_l for l' < l (columns of layer l), else zero
    error_output: Float[Array, "layer d_model n_outputs"]  # P(l+1→L) W_U
    latent_bias: Float[Array, " N"]  # b_enc_l + Σ_{l'<l} b_dec_l' P(l'+1→l) W_enc_l
    output_bias: Float[Array, " n_outputs"]  # Σ_l b_dec_l P(l+1→L) W_U + b_U
    sizes: tuple[int, ...] = eqx.field(static=True)  # latents per layer

    @property
    def starts(self) -> tuple[int, ...]:
        """Where each layer's latents begin on the latent axis (and, last, `N`)."""
        out = [0]
        for n in self.sizes:
            out.append(out[-1] + n)
        return tuple(out)

    @property
    def latent_layer(self) -> Array:
        """`[N]`: each latent's layer."""
        return jnp.repeat(jnp.arange(len(self.sizes)), jnp.asarray(self.sizes), total_repeat_length=self.starts[-1])


class AttributionGraph(NamedTuple):
    """The graph of one example (or a batch of them, with a leading batch axis on every field): node activations
    and every edge's value, activation × virtual weight. Inactive latents have no edges (zeros)."""

    inputs: Float[Array, " n_features"]  # x: the input nodes' activations
    latents: Float[Array, " N"]  # z, every layer's
    active: Bool[Array, " N"]  # z > 0: the latents that are nodes of this example's graph
    input_latent: Float[Array, "n_features N"]  # x_j (W_E P W_enc)[j, i], zero where latent i is inactive
    latent_latent: Float[Array, "N N"]  # z_i' (W_dec P W_enc)[i', i] from an earlier layer; zero in one layer
    error_latent: Float[Array, "layer N"]  # err_l' (P W_enc)[:, i] from an earlier layer's error node
    latent_output: Float[Array, "N n_outputs"]  # z_i (W_dec P W_U)[i, k]
    residual: Float[Array, "n_features n_outputs"]  # x_j (W_E W_U)[j, k]
    skip: Float[Array, "n_features n_outputs"]  # x_j (W_E (P - I) W_U)[j, k]
    error: Float[Array, "layer n_outputs"]  # each layer's error node → output k
    latent_bias: Float[Array, " N"]  # the constant part of an active latent: the edges into it sum to z minus this
    output_bias: Float[Array, " n_outputs"]
    outputs: Float[Array, " n_outputs"]  # the model's own outputs (not the replacement's)

    def into_outputs(self) -> Float[Array, "*batch n_outputs"]:
        """Each output's incoming edges summed: latents, residual, skip and errors (equal to `outputs -
        output_bias`)."""
        return self.latent_output.sum(-2) + self.residual.sum(-2) + self.skip.sum(-2) + self.error.sum(-2)

    def into_latents(self) -> Float[Array, "*batch N"]:
        """Each latent's incoming edges summed, plus its constant part (equal to `latents` where active)."""
        return (self.input_latent.sum(-2) + self.latent_latent.sum(-2) + self.error_latent.sum(-2)
                + self.latent_bias)


class InputOutput(NamedTuple):
    """Each input's attribution to each output `[n_features, n_outputs]`, split by path, and the parts no input
    owns `[n_outputs]`; `total()` summed over inputs, plus `latent_bias + error + output_bias`, is the output,
    exactly."""

    latents: Float[Array, "n_features n_outputs"]  # every path through at least one active latent
    chains: Float[Array, "n_features n_outputs"]  # the part of `latents` through two or more (cross-layer edges)
    residual: Float[Array, "n_features n_outputs"]  # the residual stream alone
    skip: Float[Array, "n_features n_outputs"]  # through skips, no latent
    latent_bias: Float[Array, " n_outputs"]  # the latents' constant parts, carried to the outputs
    error: Float[Array, " n_outputs"]  # every error node, directly and through later latents
    output_bias: Float[Array, " n_outputs"]

    def total(self) -> Float[Array, "n_features n_outputs"]:
        return self.latents + self.residual + self.skip


def as_layers(model, transcoders: Transcoder | Sequence[Transcoder]) -> tuple[Transcoder, ...]:
    """`transcoders` as a tuple, one per MLP layer, after a clear one-line error unless `model` is a residual MLP
    and each transcoder maps its layer's MLP input (`d_model`) to its output (`d_model`). One `Transcoder` stands
    for a one-layer model's list."""
    if getattr(model, "kind", None) != "residual_mlp":
        raise TypeError(f"attribution graphs need a residual_mlp model, got {type(model).__name__}")
    c = model.config
    layers = (transcoders,) if isinstance(transcoders, Transcoder) else tuple(transcoders)
    if len(layers) != c.n_layers:
        raise ValueError(f"give one transcoder per MLP layer: the model has n_layers={c.n_layers}, got "
                         f"{len(layers)}")
    for layer, tc in enumerate(layers):
        if not isinstance(tc, Transcoder):
            raise TypeError(f"the replacement of layer {layer} must be a Transcoder, got {type(tc).__name__}")
        if (tc.d_in, tc.d_out) != (c.d_model, c.d_model):
            raise ValueError(f"layer {layer}'s transcoder maps {tc.d_in} → {tc.d_out}; this model's MLP maps "
                             f"d_model={c.d_model} → {c.d_model}")
    return layers


def neuron_transcoders(model) -> tuple[Transcoder, ...]:
    """The model's own MLPs as transcoders, one latent per neuron per layer (`mlp_transcoder`: exact, so every
    error node is zero): the reference a trained replacement is compared with."""
    def layer(a, l):
        return None if a is None else a[l]

    return tuple(mlp_transcoder(model.W_in[l], layer(model.b_in, l), model.W_out[l], layer(model.b_out, l))
                 for l in range(model.config.n_layers))


def virtual_weights(model, transcoders: Transcoder | Sequence[Transcoder]) -> VirtualWeights:
    """The virtual weights of `model` with each MLP replaced by its transcoder (checked by `as_layers`)."""
    layers = as_layers(model, transcoders)
    W_E, W_U = model.W_E, model.W_U
    n_layers, d_model = len(layers), W_E.shape[1]
    b_U = jnp.zeros(W_U.shape[1]) if model.b_U is None else model.b_U

    def through(a, start, stop):
        """`a @ P(start→stop)`: rows carried by the residual stream (and skips) from layer `start` to `stop`."""
        for m in range(start, stop):
            if layers[m].W_skip is not None:
                a = a + a @ layers[m].W_skip
        return a

    eye = jnp.eye(d_model)
    enc = [tc.W_enc for tc in layers]
    latent_latent = jnp.block([[through(layers[a].W_dec, a + 1, b) @ enc[b] if a < b
                                else jnp.zeros((layers[a].n_latents, layers[b].n_latents))
                                for b in range(n_layers)] for a in range(n_layers)])
    error_latent = jnp.stack([jnp.concatenate([through(eye, a + 1, b) @ enc[b] if a < b
                                               else jnp.zeros((d_model, layers[b].n_latents))
                                               for b in range(n_layers)], 1) for a in range(n_layers)])
    latent_bias = jnp.concatenate([
        layers[b].b_enc + sum((through(layers[a].b_dec, a + 1, b) @ enc[b] for a in range(b)),
                              jnp.zeros(layers[b].n_latents)) for b in range(n_layers)])
    has_skip = any(tc.W_skip is not None for tc in layers)
    return VirtualWeights(
        input_latent=jnp.concatenate([through(W_E, 0, b) @ enc[b] for b in range(n_layers)], 1),
        latent_latent=latent_latent,
        latent_output=jnp.concatenate([through(layers[a].W_dec, a + 1, n_layers) @ W_U for a in range(n_layers)]),
        residual=W_E @ W_U,
        skip=(through(W_E, 0, n_layers) - W_E) @ W_U if has_skip else jnp.zeros((W_E.shape[0], W_U.shape[1])),
        error_latent=error_latent,
        error_output=jnp.stack([through(eye, a + 1, n_layers) @ W_U for a in range(n_layers)]),
        latent_bias=latent_bias,
        output_bias=sum((through(layers[a].b_dec, a + 1, n_layers) @ W_U for a in range(n_layers)), b_U),
        sizes=tuple(tc.n_latents for tc in layers))


def attribution_graph(model, transcoders: Transcoder | Sequence[Transcoder], x: Float[Array, "*batch n_features"],
                      weights: VirtualWeights | None = None) -> AttributionGraph:
    """The attribution graph of one input `[n_features]`, or of each row of a batch `[batch, n_features]`.

    **Arguments:**

    - `model`: a `ResidualMLP`.
    - `transcoders`: one `Transcoder` per MLP layer (a list; one `Transcoder` alone for a one-layer model), each
      from its layer's MLP input to its output (e.g. trained on the truth's `io_sample` at that layer).
    - `x`: the input features.
    - `weights`: `virtual_weights(model, transcoders)`, when already computed.

    **Returns:** an `AttributionGraph` (a leading batch axis on every field for a batch).
    """
    layers = as_layers(model, transcoders)
    weights = virtual_weights(model, layers) if weights is None else weights
    n = model.config.n_features
    if x.ndim not in (1, 2) or x.shape[-1] != n:
        raise ValueError(f"inputs must be [n_features] or [batch, n_features] with n_features={n}, got {x.shape}")
    graphs = _graphs(model, layers, weights, x if x.ndim == 2 else x[None])
    return graphs if x.ndim == 2 else jax.tree.map(lambda a: a[0], graphs)


@jit  # one compiled program per shape, rather than op by op
def _graphs(model, layers, w: VirtualWeights, x: Float[Array, "batch n_features"]) -> AttributionGraph:
    return jax.vmap(lambda row: _graph(model, layers, w, row))(x)


def _graph(model, layers, w: VirtualWeights, x: Float[Array, " n_features"]) -> AttributionGraph:
    y, acts = model.forward(x, _CAPTURE)
    resid = [acts["resid_pre", l] for l in range(len(layers))]
    z = jnp.concatenate([tc.encode(r) for tc, r in zip(layers, resid)])
    active = z > 0
    err = jnp.stack([acts["mlp_out", l] - tc.predict(r) for l, (tc, r) in enumerate(zip(layers, resid))])
    return AttributionGraph(
        inputs=x, latents=z, active=active, input_latent=x[:, None] * w.input_latent * active,
        latent_latent=z[:, None] * w.latent_latent * active,
        error_latent=jnp.einsum("ld,ldn->ln", err, w.error_latent) * active,
        latent_output=z[:, None] * w.latent_output, residual=x[:, None] * w.residual, skip=x[:, None] * w.skip,
        error=jnp.einsum("ld,ldk->lk", err, w.error_output), latent_bias=jnp.where(active, w.latent_bias, 0.0),
        output_bias=w.output_bias, outputs=y)


def through_latents(direct: Float[Array, "*batch m N"], graph: AttributionGraph, weights: VirtualWeights
                    ) -> Float[Array, "*batch m N"]:
    """Carry `m` sources' direct contributions to the latents' pre-activations (`direct`, zero at inactive latents)
    through the latent → latent edges of `graph`, layer by layer: each source's total contribution to each latent.
    Exact, because an active latent is linear in its inputs (its gate is frozen)."""
    s = weights.starts
    blocks = [direct[..., s[b]:s[b + 1]] for b in range(len(weights.sizes))]
    for b in range(len(blocks)):
        for a in range(b):  # only the blocks that are not zero: layer a before layer b
            carried = blocks[a] @ weights.latent_latent[s[a]:s[a + 1], s[b]:s[b + 1]]
            blocks[b] = blocks[b] + carried * graph.active[..., None, s[b]:s[b + 1]]
    return jnp.concatenate(blocks, -1)


def input_output(graph: AttributionGraph, weights: VirtualWeights) -> InputOutput:
    """Each input's attribution to each output, summed over its paths (through the active latents of every layer,
    the residual stream, the skips), with the latent-bias, error and bias parts apart, and the part of the latents'
    paths that crosses a latent → latent edge (`chains`: zero in one layer). Works on one graph or a batch."""
    to_out = weights.latent_output
    inputs = through_latents(graph.input_latent, graph, weights)
    bias = through_latents(graph.latent_bias[..., None, :], graph, weights)[..., 0, :]
    errors = through_latents(graph.error_latent, graph, weights) @ to_out + graph.error  # [..., layer, n_outputs]
    latents = inputs @ to_out
    return InputOutput(
        latents=latents, chains=latents - graph.input_latent @ to_out, residual=graph.residual, skip=graph.skip,
        latent_bias=bias @ to_out,
        error=errors.sum(-2), output_bias=jnp.broadcast_to(graph.output_bias, graph.error.shape[:-2]
                                                           + graph.error.shape[-1:]))


def completeness_gap(graph: AttributionGraph) -> dict[str, Float[Array, ""]]:
    """The largest violation of completeness, which must be rounding only: `"outputs"`, |edges into an output +
    output bias - the model's output|; `"latents"`, |edges into an active latent + its bias - its activation|."""
    latent_gap = jnp.where(graph.active, jnp.abs(graph.into_latents() - graph.latents), 0.0)
    return {"outputs": jnp.max(jnp.abs(graph.into_outputs() + graph.output_bias - graph.outputs)),
            "latents": jnp.max(latent_gap)}
