"""Fourier analysis over Z_p: spectra of weights and neurons, Gini sparsity, key frequencies.

A model that grokked modular addition computes in a handful of "key" frequencies (Nanda et al. 2023): its token
embedding, its neuron-logit map and its neurons' activations over the (a, b) grid are sparse in the Fourier basis
over Z_p (`toymi.tasks.fourier_basis`: row 0 constant, rows 2k-1 and 2k are cos k and sin k, k = 1..(p-1)/2).
Everything here is a pure function of arrays, so it runs unchanged under `vmap` over a checkpoint series
(`toymi.analysis.modular.progress`).

Frequencies are indexed 0..K with K = (p-1)/2: index 0 is the constant component, index k the pair (cos k, sin k).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from toymi.tasks.modular import fourier_basis


def n_frequencies(p: int) -> int:
    """K = (p-1)/2 non-constant frequencies over Z_p (p odd)."""
    if p < 3 or p % 2 == 0:
        raise ValueError(f"Fourier frequencies over Z_p need an odd p >= 3, got p={p}")
    return (p - 1) // 2


def component_norms(
    W: Float[Array, "p d"], basis: Float[Array, "p p"], axis: int = 0
) -> Float[Array, " p"]:
    """Norm of each Fourier component of `W` along `axis` (the Z_p axis): `‖(basis @ W)[i]‖` for each basis row i.

    This is the vector Nanda et al. take the Gini coefficient of (`p` entries, cos k and sin k separate).
    """
    W = jnp.moveaxis(W, axis, 0)
    if W.shape[0] != basis.shape[0]:
        raise ValueError(f"axis {axis} of W has {W.shape[0]} entries, but the basis is over Z_{basis.shape[0]}")
    coefficients = jnp.tensordot(basis, W, axes=(1, 0))  # [p, ...]
    return jnp.sqrt((coefficients.reshape(coefficients.shape[0], -1) ** 2).sum(1))


def frequency_norms(components: Float[Array, "*batch p"]) -> Float[Array, "*batch freq"]:
    """Fold component norms (`component_norms`) into one norm per frequency: `[const, ‖(cos 1, sin 1)‖, ...]`,
    so that a phase shift (which moves weight between cos k and sin k) does not change the spectrum."""
    p = components.shape[-1]
    K = n_frequencies(p)
    pairs = components[..., 1:].reshape(*components.shape[:-1], K, 2)
    return jnp.concatenate([components[..., :1], jnp.sqrt((pairs**2).sum(-1))], axis=-1)


def gini(x: Float[Array, "*batch n"]) -> Float[Array, " *batch"]:
    """Gini coefficient of non-negative values along the last axis: 0 when all are equal, (n-1)/n when one holds
    everything. Nanda et al.'s sparsity measure for Fourier spectra (a grokked embedding is near its maximum)."""
    n = x.shape[-1]
    s = jnp.sort(x, axis=-1)
    rank = jnp.arange(1, n + 1, dtype=s.dtype)
    total = s.sum(-1)
    g = ((2 * rank - n - 1) * s).sum(-1) / (n * jnp.where(total > 0, total, 1))
    return jnp.where(total > 0, g, 0.0)


def neuron_fourier(
    acts: Float[Array, "a b neuron"], basis: Float[Array, "p p"]
) -> Float[Array, "i j neuron"]:
    """2D Fourier coefficients of each neuron's activation over the (a, b) input grid: `basis @ acts @ basisᵀ`."""
    return jnp.einsum("ia,jb,abn->ijn", basis, basis, acts)


def neuron_frequency_fractions(
    acts: Float[Array, "a b neuron"], basis: Float[Array, "p p"]
) -> Float[Array, "freq neuron"]:
    """Fraction of each neuron's activation variance over the (a, b) grid explained by each frequency k = 1..K.

    Frequency k's terms are every 2D basis function built from {const, cos k, sin k} in a and in b, minus the
    constant-constant one (the mean, which is not variance): eight of them. A neuron is "explained by one
    frequency" when its largest fraction exceeds a threshold (0.85 in Nanda et al.). Dead neurons (zero
    variance) get fraction 0 everywhere. Returns `[K, neuron]`; row k-1 is frequency k.
    """
    p = basis.shape[0]
    K = n_frequencies(p)
    power = neuron_fourier(acts, basis) ** 2
    variance = power.sum((0, 1)) - power[0, 0]
    # rows/cols of frequency k: indices 0 (const), 2k-1 (cos), 2k (sin)
    idx = np.stack([np.zeros(K, int), 2 * np.arange(1, K + 1) - 1, 2 * np.arange(1, K + 1)], 1)  # [K, 3]
    block = power[idx[:, :, None], idx[:, None, :]]  # [K, 3, 3, neuron]
    explained = block.sum((1, 2)) - power[0, 0][None]
    return jnp.where(variance > 0, explained / jnp.where(variance > 0, variance, 1), 0.0)


def neuron_clusters(
    fractions: Float[Array, "freq neuron"], threshold: float = 0.85
) -> tuple[Int[Array, " neuron"], Bool[Array, " neuron"]]:
    """Each neuron's dominant frequency (1..K) and whether that frequency explains more than `threshold` of it."""
    return fractions.argmax(0) + 1, fractions.max(0) > threshold


def key_frequencies_from_neurons(
    fractions: Float[Array, "freq neuron"], threshold: float = 0.85, min_share: float = 0.05
) -> np.ndarray:
    """The frequencies the network computes with, by neuron clustering: every frequency that is the dominant one
    of at least `min_share` of the neurons it explains above `threshold`. Sorted, on the host (its length depends
    on the model)."""
    freq, explained = (np.asarray(v) for v in neuron_clusters(fractions, threshold))
    counts = np.bincount(freq[explained], minlength=fractions.shape[0] + 1)
    total = max(int(explained.sum()), 1)
    return np.flatnonzero(counts >= max(min_share * total, 1)).astype(int)


def key_frequencies_from_norms(freq_norms: Float[Array, " freq"], n: int) -> np.ndarray:
    """The `n` frequencies (1..K) with the largest norm (`frequency_norms`, constant excluded), sorted."""
    norms = np.asarray(freq_norms)[1:]
    if not 1 <= n <= norms.shape[0]:
        raise ValueError(f"n must be in [1, {norms.shape[0]}], got {n}")
    return np.sort(np.argsort(-norms)[:n] + 1)


def frequency_mask(key_freqs, p: int) -> Bool[Array, " freq"]:
    """Boolean mask over frequencies 1..K selecting `key_freqs` (a fixed shape, so it can enter a vmapped call)."""
    K = n_frequencies(p)
    key_freqs = np.asarray(key_freqs, int).reshape(-1)
    bad = key_freqs[(key_freqs < 1) | (key_freqs > K)]
    if bad.size:
        raise ValueError(f"key frequencies must be in [1, {K}] for p={p}, got {bad.tolist()}")
    mask = np.zeros(K, bool)
    mask[key_freqs - 1] = True
    return jnp.asarray(mask)


__all__ = ["component_norms", "fourier_basis", "frequency_mask", "frequency_norms", "gini",
           "key_frequencies_from_neurons", "key_frequencies_from_norms", "n_frequencies", "neuron_clusters",
           "neuron_fourier", "neuron_frequency_fractions"]
