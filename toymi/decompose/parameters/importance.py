"""Causal importance: `g_c(x) = σ(Γ_c(V_cᵀ a))`, one tiny MLP `Γ_c: R → R` per subcomponent (hidden 16, GELU)
on its own inner activation, through leaky hard sigmoids (Bushnaq et al. 2025).

Two sigmoids of the same pre-activation:

- `lower_leaky_hard_sigmoid`: `clip(x, 0, 1)` forward; below 0 its gradient is `alpha` rather than 0, so a
  subcomponent whose importance has collapsed to 0 still gets a signal from the reconstruction losses (the masks).
- `upper_leaky_hard_sigmoid`: `clip(x, 0, 1)` below 1 and `1 + alpha (x − 1)` above, so importance-minimality
  keeps pushing pre-activations above 1 back down (the minimality loss).

The paper's code made the masks' importance with `lower_leaky_relu` instead (leaky in the forward pass too); it is
an option (`SPDConfig.lower_importance`), held by the MLPs themselves so that every reader of them uses it.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

ALPHA = 0.01


@jax.custom_jvp
def lower_leaky_hard_sigmoid(x: Array) -> Array:
    """`clip(x, 0, 1)`, with gradient `ALPHA` below 0 (1 inside, 0 above 1)."""
    return jnp.clip(x, 0.0, 1.0)


@lower_leaky_hard_sigmoid.defjvp
def _lower_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    slope = jnp.where(x < 0, ALPHA, jnp.where(x <= 1, 1.0, 0.0))
    return jnp.clip(x, 0.0, 1.0), slope * dx


def lower_leaky_relu(x: Array) -> Array:
    """The SPD paper's code's lower function (goodfire-ai/spd at a1cf5a03, `lower_leaky_relu`): `min(x, 1)` above 0
    and `ALPHA x` below, in the forward pass too, so an importance can be a little negative and its masks
    `g + (1 − g) r` reach below 0 and spread wider than `r`'s [0, 1]."""
    return jnp.where(x > 0, jnp.minimum(x, 1.0), ALPHA * x)


# `SPDConfig.lower_importance`: the function that makes the masks' importance from the pre-activation
LOWER_IMPORTANCE = {"hard_sigmoid": lower_leaky_hard_sigmoid, "leaky_relu": lower_leaky_relu}


def upper_leaky_hard_sigmoid(x: Array) -> Array:
    """`clip(x, 0, 1)` up to 1, then `1 + ALPHA (x − 1)`."""
    return jnp.where(x > 1, 1 + ALPHA * (x - 1), jnp.clip(x, 0.0, 1.0))


class ImportanceMLPs(eqx.Module):
    """C independent scalar MLPs `Γ_c(s) = w2_c · gelu(w1_c s + b1_c) + b2_c` (parameters stacked over c)."""

    w1: Float[Array, "C hidden"]
    b1: Float[Array, "C hidden"]
    w2: Float[Array, "C hidden"]
    b2: Float[Array, " C"]
    lower: str = eqx.field(static=True, default="hard_sigmoid")  # a `LOWER_IMPORTANCE` name

    def __call__(self, inner: Float[Array, "*batch C"]) -> Float[Array, "*batch C"]:
        """Pre-sigmoid importance of each subcomponent from its own inner activation."""
        # Both layers as dot_generals batched over c, so that their weight gradients are dots too. Written as
        # broadcast products (`inner[..., None] * w1`, then a sum over hidden), w1's and w2's gradients are
        # multiply-and-reduce over the batch, which XLA's CPU backend (jax 0.10, YNNPACK reductions) runs several
        # times slower inside a vmap over members: on TMS 40-10's shapes the MLPs' forward and gradient 5.4× and a
        # whole SPD step 8.0× (1.30 s against 0.16 s; benchmarks/spd_importance_speed.py times both forms).
        flat = inner.reshape(-1, inner.shape[-1])
        pre = jax.lax.dot_general(flat, self.w1, (((), ()), ((1,), (0,))))  # [C, n, hidden]
        # exact (erf) GELU, as the reference's torch `F.gelu` / `nn.GELU()` (jax's default is the tanh approximation)
        h = jax.nn.gelu(pre + self.b1[:, None, :], approximate=False)
        out = jax.lax.dot_general(h, self.w2, (((2,), (1,)), ((0,), (0,))))  # [C, n]
        return (out.T + self.b2).reshape(inner.shape)


def init_importance(C: int, key: PRNGKeyArray, hidden: int = 16, lower: str = "hard_sigmoid") -> ImportanceMLPs:
    """He-normal weights (fan-in 1, then `hidden`), zero biases; `lower` names the masks' function."""
    if lower not in LOWER_IMPORTANCE:
        raise ValueError(f"lower must be one of {sorted(LOWER_IMPORTANCE)}; got {lower!r}")
    k1, k2 = jax.random.split(key)
    return ImportanceMLPs(w1=math.sqrt(2.0) * jax.random.normal(k1, (C, hidden)), b1=jnp.zeros((C, hidden)),
                          w2=jax.random.normal(k2, (C, hidden)) / math.sqrt(hidden), b2=jnp.zeros(C), lower=lower)


def causal_importance(gamma: ImportanceMLPs, inner: Float[Array, "*batch C"]
                      ) -> tuple[Float[Array, "*batch C"], Float[Array, "*batch C"]]:
    """`(g_lower, g_upper)`: the masks' importance and the minimality loss's, from one pre-activation."""
    pre = gamma(inner)
    return LOWER_IMPORTANCE[gamma.lower](pre), upper_leaky_hard_sigmoid(pre)
