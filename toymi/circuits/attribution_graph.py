"""Attribution graphs through a transcoder (circuit tracing, Ameisen et al. 2025) for a one-layer residual MLP.

The replacement model swaps the MLP for a trained transcoder (`toymi.decompose.transcoder`) and, per example,
freezes which latents are active. With the nonlinearity frozen every remaining map is linear, so each output is
exactly a sum of edges, and an edge from node s to node t is s's activation times the virtual weight from s to
t's pre-activation. For the residual MLP (`toymi.model.residual_mlp`, one layer: both the AND-gate and the
compressed-computation models)

    r   = x @ W_E                                      input features → residual stream
    z   = act(r @ W_enc + b_enc)                       transcoder latents (ReLU or TopK), active where z > 0
    err = mlp_out(r) - transcoder.predict(r)           the error node: what the transcoder misses
    y   = (r + z @ W_dec + b_dec + r @ W_skip + err) @ W_U + b_U

the nodes are the input features `x_j`, the active latents `z_i`, one error node and the outputs `y_k`, and

    input j  → latent i:  x_j · (W_E W_enc)[j, i]           (plus b_enc[i], these sum to z_i for an active latent)
    latent i → output k:  z_i · (W_dec W_U)[i, k]
    input j  → output k:  x_j · (W_E W_U)[j, k]  (residual)  and  x_j · (W_E W_skip W_U)[j, k]  (skip)
    error    → output k:  err · W_U[:, k]

so the edges into each output sum to it minus the constant `b_dec W_U + b_U` (completeness: `completeness_gap`).
`input_output` splits each input's effect on each output into its paths through the latents (input → latent →
output, exact because the latents' gates are frozen), the residual stream and the skip.

Why only one layer: a deeper model needs a transcoder per layer and edges between layers' latents (a cross-layer
graph); neither task here has one. `toymi.circuits.attribution_scores` averages the graph over a batch and scores it
against the tasks' known circuits.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from toymi.decompose.transcoder import Transcoder
from toymi.jit import jit

_CAPTURE = frozenset({"resid_pre", "mlp_out"})


class VirtualWeights(eqx.Module):
    """The replacement model's linear maps between nodes, computed once per (model, transcoder).

    `input_latent` `[n_features, n_latents]` = `W_E W_enc`; `latent_output` `[n_latents, n_outputs]` = `W_dec W_U`;
    `residual` and `skip` `[n_features, n_outputs]` = `W_E W_U` and `W_E W_skip W_U` (zeros without a skip);
    `error_output` `[d_model, n_outputs]` = `W_U` (the error node's direction differs per example); `latent_bias`
    = `b_enc`; `output_bias` = `b_dec W_U + b_U` (the constant part of every output).
    """

    input_latent: Float[Array, "n_features n_latents"]
    latent_output: Float[Array, "n_latents n_outputs"]
    residual: Float[Array, "n_features n_outputs"]
    skip: Float[Array, "n_features n_outputs"]
    error_output: Float[Array, "d_model n_outputs"]
    latent_bias: Float[Array, " n_latents"]
    output_bias: Float[Array, " n_outputs"]


class AttributionGraph(NamedTuple):
    """The graph of one example (or a batch of them, with a leading batch axis on every field): node activations
    and every edge's value, activation × virtual weight. Inactive latents have no edges (zeros)."""

    inputs: Float[Array, " n_features"]  # x: the input nodes' activations
    latents: Float[Array, " n_latents"]  # z
    active: Bool[Array, " n_latents"]  # z > 0: the latents that are nodes of this example's graph
    input_latent: Float[Array, "n_features n_latents"]  # x_j (W_E W_enc)[j, i], zero where latent i is inactive
    latent_output: Float[Array, "n_latents n_outputs"]  # z_i (W_dec W_U)[i, k]
    residual: Float[Array, "n_features n_outputs"]  # x_j (W_E W_U)[j, k]
    skip: Float[Array, "n_features n_outputs"]  # x_j (W_E W_skip W_U)[j, k]
    error: Float[Array, " n_outputs"]  # (mlp_out - transcoder.predict) · W_U[:, k]
    latent_bias: Float[Array, " n_latents"]  # b_enc where active: the edges into a latent sum to z minus this
    output_bias: Float[Array, " n_outputs"]  # b_dec W_U + b_U
    outputs: Float[Array, " n_outputs"]  # the model's own outputs (not the replacement's)

    def into_outputs(self) -> Float[Array, "*batch n_outputs"]:
        """Each output's incoming edges summed: latents, residual, skip and error (equal to `outputs -
        output_bias`)."""
        return (self.latent_output.sum(-2) + self.residual.sum(-2) + self.skip.sum(-2) + self.error)


class InputOutput(NamedTuple):
    """Each input's attribution to each output `[n_features, n_outputs]`, split by path, and the parts no input
    owns `[n_outputs]`; `total()` summed over inputs, plus `latent_bias + error + output_bias`, is the output,
    exactly."""

    latents: Float[Array, "n_features n_outputs"]  # Σ_i over active latents of x_j V[j, i] U[i, k]
    residual: Float[Array, "n_features n_outputs"]
    skip: Float[Array, "n_features n_outputs"]
    latent_bias: Float[Array, " n_outputs"]  # Σ_i b_enc[i] U[i, k] over active latents
    error: Float[Array, " n_outputs"]
    output_bias: Float[Array, " n_outputs"]

    def total(self) -> Float[Array, "n_features n_outputs"]:
        return self.latents + self.residual + self.skip


def check_replacement(model, transcoder: Transcoder) -> None:
    """A clear one-line error unless `model` is a one-layer residual MLP and `transcoder` maps its MLP's input
    (`d_model`) to its output (`d_model`)."""
    if getattr(model, "kind", None) != "residual_mlp":
        raise TypeError(f"attribution graphs need a residual_mlp model, got {type(model).__name__}")
    c = model.config
    if c.n_layers != 1:
        raise ValueError(f"attribution graphs support one MLP layer (no cross-layer transcoders), got "
                         f"n_layers={c.n_layers}")
    if not isinstance(transcoder, Transcoder):
        raise TypeError(f"the replacement must be a Transcoder, got {type(transcoder).__name__}")
    if (transcoder.d_in, transcoder.d_out) != (c.d_model, c.d_model):
        raise ValueError(f"the transcoder maps {transcoder.d_in} → {transcoder.d_out}; this model's MLP maps "
                         f"d_model={c.d_model} → {c.d_model}")


def virtual_weights(model, transcoder: Transcoder) -> VirtualWeights:
    """The virtual weights of `model` with its MLP replaced by `transcoder` (`check_replacement` first)."""
    check_replacement(model, transcoder)
    W_E, W_U = model.W_E, model.W_U
    skip = (jnp.zeros((W_E.shape[0], W_U.shape[1])) if transcoder.W_skip is None
            else W_E @ transcoder.W_skip @ W_U)
    b_U = jnp.zeros(W_U.shape[1]) if model.b_U is None else model.b_U
    return VirtualWeights(W_E @ transcoder.W_enc, transcoder.W_dec @ W_U, W_E @ W_U, skip, W_U, transcoder.b_enc,
                          transcoder.b_dec @ W_U + b_U)


def attribution_graph(model, transcoder: Transcoder, x: Float[Array, "*batch n_features"],
                      weights: VirtualWeights | None = None) -> AttributionGraph:
    """The attribution graph of one input `[n_features]`, or of each row of a batch `[batch, n_features]`.

    **Arguments:**

    - `model`: a one-layer `ResidualMLP`.
    - `transcoder`: a `Transcoder` from the MLP's input to its output (e.g. trained on the truth's `io_sample`).
    - `x`: the input features.
    - `weights`: `virtual_weights(model, transcoder)`, when already computed.

    **Returns:** an `AttributionGraph` (a leading batch axis on every field for a batch).
    """
    weights = virtual_weights(model, transcoder) if weights is None else weights
    n = model.config.n_features
    if x.ndim not in (1, 2) or x.shape[-1] != n:
        raise ValueError(f"inputs must be [n_features] or [batch, n_features] with n_features={n}, got {x.shape}")
    graphs = _graphs(model, transcoder, weights, x if x.ndim == 2 else x[None])
    return graphs if x.ndim == 2 else jax.tree.map(lambda a: a[0], graphs)


@jit  # one compiled program per shape, rather than op by op
def _graphs(model, transcoder: Transcoder, w: VirtualWeights, x: Float[Array, "batch n_features"]) -> AttributionGraph:
    return jax.vmap(lambda row: _graph(model, transcoder, w, row))(x)


def _graph(model, transcoder: Transcoder, w: VirtualWeights, x: Float[Array, " n_features"]) -> AttributionGraph:
    y, acts = model.forward(x, _CAPTURE)
    r, mlp_out = acts["resid_pre", 0], acts["mlp_out", 0]
    z = transcoder.encode(r)
    active = z > 0
    error = (mlp_out - transcoder.predict(r)) @ w.error_output
    return AttributionGraph(
        inputs=x, latents=z, active=active, input_latent=x[:, None] * w.input_latent * active,
        latent_output=z[:, None] * w.latent_output, residual=x[:, None] * w.residual, skip=x[:, None] * w.skip,
        error=error, latent_bias=jnp.where(active, w.latent_bias, 0.0), output_bias=w.output_bias, outputs=y)


def input_output(graph: AttributionGraph, weights: VirtualWeights) -> InputOutput:
    """Each input's attribution to each output, summed over its paths through the active latents (edge input →
    latent times the latent's virtual weight to the output), with the residual, skip, latent-bias, error and bias
    parts apart. Works on one graph or a batch."""
    return InputOutput(
        latents=graph.input_latent @ weights.latent_output, residual=graph.residual, skip=graph.skip,
        latent_bias=graph.latent_bias @ weights.latent_output, error=graph.error,
        output_bias=jnp.broadcast_to(graph.output_bias, graph.error.shape))


def completeness_gap(graph: AttributionGraph) -> dict[str, Float[Array, ""]]:
    """The largest violation of completeness, which must be rounding only: `"outputs"`, |edges into an output +
    output bias - the model's output|; `"latents"`, |edges into an active latent + its bias - its activation|."""
    into_latents = graph.input_latent.sum(-2) + graph.latent_bias
    latent_gap = jnp.where(graph.active, jnp.abs(into_latents - graph.latents), 0.0)
    return {"outputs": jnp.max(jnp.abs(graph.into_outputs() + graph.output_bias - graph.outputs)),
            "latents": jnp.max(latent_gap)}
