"""Edge pruning (Bhaskar et al. 2024): learn a mask over the edges by gradient descent (optax).

Each edge gets a logit; its mask `sigmoid(logit)` keeps it (1) or ablates it (0) in `graph_forward`. The loss is the
squared distance of the masked model's metric from the full model's (in units of the full-minus-empty gap) plus
`sparsity` times the mean keep-probability. Bhaskar et al. sample hard-concrete masks with a target sparsity; this
samples relaxed Bernoulli (concrete) masks with an L1 penalty instead, which is enough on toy graphs. The circuit:
keep-probabilities above 0.5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float

from toymi.circuits.forward import batched_forward, graph_for
from toymi.dissect.grid import scalar_metric
from toymi.jit import jit
from toymi.train.update import update


@jit
def _prune(model, run, other, metric, sparsity, steps, lr, key):
    graph = graph_for(model, other)
    edges = jnp.asarray(graph.edges)

    def metric_of(kept):
        ablate = jnp.zeros(graph.valid.shape).at[edges[:, 0], edges[:, 1]].set(1.0 - kept)
        return scalar_metric(metric, batched_forward(model, run, other, ablate))

    full, empty = metric_of(jnp.ones(len(edges))), metric_of(jnp.zeros(len(edges)))
    scale = jnp.maximum(jnp.abs(full - empty), 1e-6)

    def loss(logits, key):
        # A relaxed Bernoulli sample (logistic noise, temperature 1/2): masks near 0 or 1, so a saturated circuit
        # cannot keep an edge at a fraction that still works (a half-scaled sharp query still attends sharply).
        u = jax.random.uniform(key, logits.shape, minval=1e-6, maxval=1 - 1e-6)
        kept = jax.nn.sigmoid((logits + jnp.log(u) - jnp.log1p(-u)) / 0.5)
        return ((metric_of(kept) - full) / scale) ** 2 + sparsity * jax.nn.sigmoid(logits).mean()

    optimizer = optax.adam(lr)

    def step(carry, key):
        return update(lambda logits, k: (loss(logits, k), None), optimizer, *carry, key)[:2], None

    start = jnp.full(len(edges), 3.0)  # every edge kept (sigmoid 0.95) at first
    (logits, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), jax.random.split(key, steps))
    return jax.nn.sigmoid(logits)


def edge_pruning(model, run, other, metric, sparsity: float = 0.5, steps: int = 300, lr: float = 0.1,
                 seed: int = 0) -> Float[np.ndarray, " edge"]:
    """The learned keep-probability of every edge, `sigmoid(logit)` in [0, 1] (the circuit: those above 0.5)."""
    return np.asarray(_prune(model, run, other, metric, sparsity, steps, lr, jax.random.key(seed)))
