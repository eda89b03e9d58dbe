"""Gradient methods over the edge graph: EAP, EAP-IG, and node-level activation / attribution patching baselines.

The ablation matrix of `graph_forward` makes every edge a weight, so these are gradients with respect to it:

- EAP (Syed et al. 2023): `d metric / d ablate[s, r]` at zero, which is `grad_{input_r} metric . (other_s - current_s)`,
  gradient x difference, from one backward pass: the first-order term of each edge's exact patching effect.
- EAP-IG (Hanna et al. 2024): that gradient averaged along the straight path that moves every edge at once from the
  run's values (0) to the other values (1), at `steps` midpoints, so the scores sum to about the effect of ablating
  everything (integrated gradients' completeness). Hanna et al. interpolate the input embeddings; moving every edge
  moves the input with them, and every later activation too.
- Node patching: ablate every outgoing edge of one sender (its whole output) at once, exactly; node attribution is
  its first-order term. A node method cannot rank edges itself: an edge scores the smaller of its two nodes' scores
  (the logits count as infinite), which is how node circuits are compared with edge circuits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from toymi.circuits.forward import batched_forward, graph_for
from toymi.circuits.graph import Graph
from toymi.dissect.grid import scalar_metric
from toymi.jit import jit


def _metric_fn(model, run, other, metric):
    return lambda ablate: scalar_metric(metric, batched_forward(model, run, other, ablate))


@jit
def _edge_gradients(model, run, other, metric, alphas):
    """`[alpha, sender, receiver]`: the metric's gradient w.r.t. every edge weight, with every edge at `alpha`."""
    valid = jnp.asarray(graph_for(model, other).valid, jnp.float32)
    grad = jax.grad(_metric_fn(model, run, other, metric))
    return jax.vmap(lambda a: grad(a * valid))(alphas)


def _on_edges(graph: Graph, matrix: Array) -> np.ndarray:
    return np.asarray(matrix)[graph.edges[:, 0], graph.edges[:, 1]]


def eap(model, run, other, metric) -> Float[np.ndarray, " edge"]:
    """EAP: each edge's estimated effect on the metric (signed; rank by its absolute value)."""
    grads = _edge_gradients(model, run, other, metric, jnp.zeros(1))
    return _on_edges(graph_for(model, other), grads[0])


def eap_ig(model, run, other, metric, steps: int = 8) -> Float[np.ndarray, " edge"]:
    """EAP-IG: the gradient averaged over `steps` points on the path from no edge ablated to every edge ablated."""
    alphas = (jnp.arange(steps) + 0.5) / steps
    return _on_edges(graph_for(model, other), _edge_gradients(model, run, other, metric, alphas).mean(0))


@jit
def _node_patching(model, run, other, metric):
    valid = jnp.asarray(graph_for(model, other).valid, jnp.float32)
    f = _metric_fn(model, run, other, metric)
    rows = jnp.eye(valid.shape[0])[:, :, None] * valid[None]  # [sender, sender, receiver]: one node's edges each
    return jax.vmap(f)(rows) - f(jnp.zeros_like(valid))


def node_effects(model, run, other, metric, exact: bool = True) -> Float[np.ndarray, " sender"]:
    """Each sender's effect when its whole output is ablated: exactly (one compiled call over the senders), or to
    first order (attribution patching: the sum of its outgoing edges' EAP scores)."""
    if exact:
        return np.asarray(_node_patching(model, run, other, metric))
    grads = np.asarray(_edge_gradients(model, run, other, metric, jnp.zeros(1))[0])
    return (grads * graph_for(model, other).valid).sum(1)


def edges_from_nodes(graph: Graph, node_scores: np.ndarray) -> Float[np.ndarray, " edge"]:
    """Edge scores from node scores: the smaller of the sender's and the receiving node's |score|."""
    magnitude = np.abs(np.asarray(node_scores, np.float64))
    receiving = graph.receiver_nodes()
    to = np.where(receiving >= 0, magnitude[np.maximum(receiving, 0)], np.inf)
    return np.minimum(magnitude[graph.edges[:, 0]], to[graph.edges[:, 1]])
