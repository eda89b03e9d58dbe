"""Rank-1 subcomponents of one weight matrix: `M ≈ Σ_c U[:, c] V[:, c]ᵀ = U Vᵀ`, C of them (C may exceed the rank).

`M` is `[d_out, d_in]` (`out = M @ a`, `toymi.decompose.parameters.targets`). Subcomponent c reads its input with
`V[:, c]` (its inner activation `V_cᵀ a`) and writes `U[:, c]`. A mask `m` `[C]` gives the masked matrix
`U diag(m) Vᵀ`; `m = 1` everywhere is the plain sum.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class Subcomponents(eqx.Module):
    """`U` `[d_out, C]` and `V` `[d_in, C]` of one matrix."""

    U: Float[Array, "d_out C"]
    V: Float[Array, "d_in C"]

    @property
    def C(self) -> int:
        return self.U.shape[-1]

    def inner(self, a: Float[Array, "*batch d_in"]) -> Float[Array, "*batch C"]:
        """Each subcomponent's inner activation `V_cᵀ a`."""
        return a @ self.V

    def weight(self, mask: Float[Array, " C"] | None = None) -> Float[Array, "d_out d_in"]:
        """`U diag(mask) Vᵀ` (the plain sum without a mask)."""
        return self.U @ self.V.T if mask is None else (self.U * mask) @ self.V.T

    def matrices(self) -> Float[Array, "C d_out d_in"]:
        """Every subcomponent's rank-1 matrix `U_c V_cᵀ`."""
        return jnp.einsum("oc,ic->coi", self.U, self.V)

    def norms(self) -> Float[Array, " C"]:
        """Frobenius norm of each `U_c V_cᵀ` (= ‖U_c‖ ‖V_c‖)."""
        return jnp.linalg.norm(self.U, axis=0) * jnp.linalg.norm(self.V, axis=0)


def init_subcomponents(d_out: int, d_in: int, C: int, key: PRNGKeyArray) -> Subcomponents:
    """Gaussian `U`, `V` scaled so that a random sum of C subcomponents has entries of order 1/sqrt(d_in)."""
    k_u, k_v = jax.random.split(key)
    return Subcomponents(U=jax.random.normal(k_u, (d_out, C)) / math.sqrt(C),
                         V=jax.random.normal(k_v, (d_in, C)) / math.sqrt(d_in))
