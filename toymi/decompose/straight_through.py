"""JumpReLU's straight-through estimators (Rajamanoharan et al. 2024): `jumprelu` and `heaviside` whose threshold
gets the rectangle-kernel pseudo-derivative, so a JumpReLU SAE (`toymi.decompose.sae`) can learn its thresholds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@jax.custom_vjp
def _jump(pre, threshold, bandwidth):
    return pre * (pre > threshold)


def _jump_fwd(pre, threshold, bandwidth):
    return _jump(pre, threshold, bandwidth), (pre, threshold, bandwidth)


def _rectangle(u):
    return (jnp.abs(u) < 0.5).astype(u.dtype)


def _jump_bwd(res, g):
    pre, threshold, bandwidth = res
    d_pre = g * (pre > threshold)
    # pseudo-derivative of pre·H(pre − θ) in θ: −(θ/ε)·K((pre − θ)/ε)
    d_threshold = jnp.sum(g * -(threshold / bandwidth) * _rectangle((pre - threshold) / bandwidth),
                          axis=tuple(range(pre.ndim - 1)))
    return d_pre, d_threshold, jnp.zeros_like(bandwidth)


_jump.defvjp(_jump_fwd, _jump_bwd)


@jax.custom_vjp
def _step(pre, threshold, bandwidth):
    return (pre > threshold).astype(pre.dtype)


def _step_fwd(pre, threshold, bandwidth):
    return _step(pre, threshold, bandwidth), (pre, threshold, bandwidth)


def _step_bwd(res, g):
    pre, threshold, bandwidth = res
    # pseudo-derivative of H(pre − θ) in θ: −(1/ε)·K((pre − θ)/ε); none in pre (the L0 term must not move codes)
    d_threshold = jnp.sum(g * -(1.0 / bandwidth) * _rectangle((pre - threshold) / bandwidth),
                          axis=tuple(range(pre.ndim - 1)))
    return jnp.zeros_like(pre), d_threshold, jnp.zeros_like(bandwidth)


_step.defvjp(_step_fwd, _step_bwd)


def jumprelu(pre: Float[Array, "*batch n"], threshold: Float[Array, " n"],
             bandwidth: Float[Array, ""]) -> Float[Array, "*batch n"]:
    """pre · H(pre − θ) with the straight-through rectangle-kernel gradient for θ (Rajamanoharan et al. 2024)."""
    return _jump(pre, jnp.broadcast_to(threshold, pre.shape[-1:]), bandwidth)


def heaviside(pre: Float[Array, "*batch n"], threshold: Float[Array, " n"],
              bandwidth: Float[Array, ""]) -> Float[Array, "*batch n"]:
    """H(pre − θ), whose θ-gradient is the rectangle-kernel pseudo-derivative (the L0 penalty's)."""
    return _step(pre, jnp.broadcast_to(threshold, pre.shape[-1:]), bandwidth)
