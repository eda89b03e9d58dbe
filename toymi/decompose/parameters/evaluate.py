"""Read a trained decomposition on chosen inputs: causal importances per decomposed matrix."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
from jaxtyping import Array, Float

from toymi.decompose.parameters.losses import SPDParams, importance
from toymi.decompose.parameters.targets import Target, target_inputs


@eqx.filter_jit
def causal_importances(params: SPDParams, model: eqx.Module, targets: Sequence[Target], x: Float[Array, "batch d"]
                       ) -> list[Float[Array, "batch C"]]:
    """Each target's causal importance `g` in [0, 1] (`[batch, C]`) on the model inputs `x`."""
    _, inputs = target_inputs(model, targets, x)
    g_lower, _ = importance(params, inputs)
    return [jax.lax.stop_gradient(g) for g in g_lower]
