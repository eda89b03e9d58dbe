"""The one optimiser step every trainer in toymi takes: models, SAEs, transcoders, probes, LayerNorm removal.

    params, opt_state, loss, aux = update(loss_fn, optimizer, params, opt_state, batch, project=None)

Pure (no state but its arguments), so it runs under `jit`, inside `lax.scan` and under `vmap` (a whole ensemble of
SAEs or every layer's probe at once). `params` is any pytree (an `eqx.Module`, or a tuple of arrays): gradients
are taken with respect to its inexact arrays only, so static fields and integer leaves pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import equinox as eqx
import optax
from jaxtyping import Array, Float

P = TypeVar("P")
LossFn = Callable[[P, object], tuple[Float[Array, ""], object]]  # (params, batch) -> (loss, aux)


def update(loss_fn: LossFn, optimizer: optax.GradientTransformation, params: P, opt_state: optax.OptState,
           batch, *, project: Callable[[P], P] | None = None) -> tuple[P, optax.OptState, Float[Array, ""], object]:
    """One gradient step of `optimizer` on `loss_fn(params, batch)`.

    **Arguments:**

    - `loss_fn`: `(params, batch) -> (loss, aux)`: a scalar loss and any auxiliary outputs (None if there are
      none), e.g. which SAE latents fired, or a probe's accuracy.
    - `optimizer`, `opt_state`: an optax transformation and its state for `params`' inexact arrays.
    - `params`: the model or parameter pytree.
    - `batch`: what `loss_fn` is evaluated on (anything; closed-over data works too).
    - `project`: applied to the updated params, e.g. renormalising an SAE's decoder rows (a projection back onto
      the constraint set after an unconstrained step).

    **Returns:** `(new params, new opt_state, loss, aux)`; `loss` and `aux` are from before the update.
    """
    (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(params, eqx.is_inexact_array))
    params = eqx.apply_updates(params, updates)
    if project is not None:
        params = project(params)
    return params, opt_state, loss, aux
