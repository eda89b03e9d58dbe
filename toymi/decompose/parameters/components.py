"""Rank-1 subcomponents of one weight matrix: `M ≈ Σ_c U[:, c] V[:, c]ᵀ = U Vᵀ`, C of them (C may exceed the rank).

`M` is `[d_out, d_in]` (`out = M @ a`, `toymi.decompose.parameters.targets`). Subcomponent c reads its input with
`V[:, c]` (its inner activation `V_cᵀ a`) and writes `U[:, c]`. A mask `m` `[C]` gives the masked matrix
`U diag(m) Vᵀ`; `m = 1` everywhere is the plain sum.

**Masked matrices stay factored.** SPD masks every example with its own `m`, so a materialised masked matrix is
`[batch, d_out, d_in]` per decomposed matrix (`[2048, 50, 1000]` for compressed computation). `masked(m)` returns a
`FactoredMatrix` instead: it stands in the model where the dense matrix would (the model's own `W @ a`, `a @ W`,
`W.T`), and multiplies as `U (m ⊙ (Vᵀ a))`, `d_in·C + C·d_out` work per example rather than `C·d_in·d_out`.
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

    def masked(self, mask: Float[Array, " C"] | None = None) -> FactoredMatrix:
        """`U diag(mask) Vᵀ` kept factored (see the module docstring); `.dense()` is `weight(mask)`."""
        return FactoredMatrix(self.U, self.V, mask)

    def matrices(self) -> Float[Array, "C d_out d_in"]:
        """Every subcomponent's rank-1 matrix `U_c V_cᵀ`."""
        return jnp.einsum("oc,ic->coi", self.U, self.V)

    def norms(self) -> Float[Array, " C"]:
        """Frobenius norm of each `U_c V_cᵀ` (= ‖U_c‖ ‖V_c‖)."""
        return jnp.linalg.norm(self.U, axis=0) * jnp.linalg.norm(self.V, axis=0)


class FactoredMatrix(eqx.Module):
    """The matrix `U diag(mask) Vᵀ` `[d_out, d_in]`, never built: `@` on either side and `.T` go through the factors,
    so it can replace a weight array inside a model's own forward (`targets.Target.put`)."""

    U: Float[Array, "d_out C"]
    V: Float[Array, "d_in C"]
    mask: Float[Array, " C"] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.U.shape[0], self.V.shape[0])

    @property
    def T(self) -> FactoredMatrix:  # noqa: N802 (numpy's name)
        """`V diag(mask) Uᵀ`."""
        return FactoredMatrix(self.V, self.U, self.mask)

    def _scale(self, inner: Array, axis: int) -> Array:
        if self.mask is None:
            return inner
        return inner * (self.mask if axis == -1 else self.mask[:, None])

    def __matmul__(self, a: Float[Array, "d_in *k"]) -> Float[Array, "d_out *k"]:
        """`M @ a` for a vector or a matrix `a`."""
        if a.ndim not in (1, 2) or a.shape[0] != self.shape[1]:
            raise ValueError(f"cannot multiply a {self.shape} matrix by an array of shape {a.shape}")
        inner = self.V.T @ a  # [C] or [C, k]
        return self.U @ self._scale(inner, -1 if a.ndim == 1 else 0)

    def __rmatmul__(self, a: Float[Array, "*batch d_out"]) -> Float[Array, "*batch d_in"]:
        """`a @ M` (rows of `a` times the matrix)."""
        if a.ndim < 1 or a.shape[-1] != self.shape[0]:
            raise ValueError(f"cannot multiply an array of shape {a.shape} by a {self.shape} matrix")
        return self._scale(a @ self.U, -1) @ self.V.T

    def dense(self) -> Float[Array, "d_out d_in"]:
        """The matrix itself (for checks; SPD's losses never build it per example)."""
        return (self.U if self.mask is None else self.U * self.mask) @ self.V.T


def init_subcomponents(d_out: int, d_in: int, C: int, key: PRNGKeyArray) -> Subcomponents:
    """Gaussian `U`, `V` scaled so that a random sum of C subcomponents has entries of order 1/sqrt(d_in)."""
    k_u, k_v = jax.random.split(key)
    return Subcomponents(U=jax.random.normal(k_u, (d_out, C)) / math.sqrt(C),
                         V=jax.random.normal(k_v, (d_in, C)) / math.sqrt(d_in))


def init_overlapping(weight: Float[Array, "d_out d_in"], C: int, key: PRNGKeyArray) -> Subcomponents:
    """The SPD paper's code's start (goodfire-ai/spd at a1cf5a03, `init_As_and_Bs_`): random unit-norm `U` and `V`
    columns, then each `U_c` scaled by its subcomponent's overlap with the weights, `U_cᵀ W V_c`, so that each starts
    at about the size of the part of `W` it lines up with (unlike `init_subcomponents`, which ignores `W`)."""
    k_u, k_v = jax.random.split(key)
    U = jax.random.normal(k_u, (weight.shape[0], C))
    V = jax.random.normal(k_v, (weight.shape[1], C))
    U, V = U / jnp.linalg.norm(U, axis=0), V / jnp.linalg.norm(V, axis=0)
    return Subcomponents(U=U * jnp.einsum("oc,oi,ic->c", U, weight, V), V=V)


# `SPDConfig.init`: how each decomposed matrix's subcomponents start, from the matrix, C and a key
INITS = {"gaussian": lambda weight, C, key: init_subcomponents(*weight.shape, C, key),
         "overlapping": init_overlapping}
