"""The modular-arithmetic truth: the neurons at `=`, scored by where each latent's 2-D Fourier power lies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from toymi.analysis.modular.key_frequencies import embedding_key_frequencies
from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.splice import check_where
from toymi.decompose.truths.sampling import SPLICE_SEED, activation_sampler, alive_rows, captured_rows, model_splice
from toymi.model.hooked import unit_rows
from toymi.model.transformer import Transformer
from toymi.tasks.modular import ModularArithmetic, fourier_basis


def frequency_of_component(p: int) -> np.ndarray:
    """The frequency k of each Fourier component index (0 for const, k for cos k and sin k)."""
    return (np.arange(p) + 1) // 2


def key_frequency_fractions(neuron_table: Float[Array, "p p d"], directions: Float[Array, "n d"],
                            key: tuple[int, ...]) -> dict[str, Float[Array, " n"]]:
    """Per direction `v`, the 2-D Fourier power of the centred function `(a, b) -> neurons(a, b) · v̂`:

    - `key_fraction`: share in the key subspace, the components whose a- and b-frequencies are both in
      `key ∪ {0}` (not both 0) — it holds cos/sin of k·a, k·b, and k·(a ± b);
    - `single_frequency_fraction`: the largest share held by one key frequency k alone, i.e. by the components
      with frequencies (k, 0), (0, k) and (k, k) — 1 for a latent that reads one frequency.

    **Arguments:** `neuron_table` `[p, p, d]` (the site on every pair), `directions` `[n, d]`, `key` frequencies.
    """
    p = neuron_table.shape[0]
    centred = neuron_table - neuron_table.mean(axis=(0, 1))
    basis, _ = fourier_basis(p)
    coeffs = jnp.einsum("ia,abd,jb->ijd", basis, centred, basis)  # linear in the neuron axis
    power = jnp.einsum("ijd,nd->ijn", coeffs, unit_rows(directions)) ** 2
    total = jnp.maximum(power.sum(axis=(0, 1)), 1e-30)
    freq = frequency_of_component(p)
    in_key = np.isin(freq, (0, *key))
    key_mask = in_key[:, None] & in_key[None, :] & ~((freq[:, None] == 0) & (freq[None, :] == 0))
    shares = []
    for k in key:
        mask = ((freq[:, None] == k) & (freq[None, :] == 0)) | ((freq[:, None] == 0) & (freq[None, :] == k)) | (
            (freq[:, None] == k) & (freq[None, :] == k))
        shares.append(jnp.sum(power * mask[..., None], axis=(0, 1)) / total)
    return {"key_fraction": jnp.sum(power * key_mask[..., None], axis=(0, 1)) / total,
            "single_frequency_fraction": jnp.max(jnp.stack(shares), axis=0) if shares else jnp.zeros(len(total))}


def modular_truth(model: Transformer, task: ModularArithmetic, layer: int = 0,
                  key: tuple[int, ...] | None = None, n_random: int = 256) -> GroundTruth:
    """Modular arithmetic: the MLP neurons (`mlp_post`, layer `layer`) at the `=` position, scored in Fourier space.

    The space: a decoder direction `v` lives in neuron space (`d_mlp`). It is read as the function
    `f_v(a, b) = mlp_post(a, b) · v̂` over all `p²` pairs (centred), and scored by where `f_v`'s 2-D Fourier power
    lies (`key_frequency_fractions`): `key_fraction` (the brief's "fraction of the latent's norm in the key
    frequencies' Fourier subspace") and `single_frequency_fraction` (does a latent pick one frequency?), both
    averaged over alive (non-zero) latents. A grokked model's neurons live almost entirely in the key
    frequencies, so every direction scores high on `key_fraction`: `score` also returns both numbers for
    `n_random` random directions (`random_*`), the bar a decomposition must clear. `key` defaults to
    `embedding_key_frequencies(model, task)`. `neurons` is the identity (the site is the neuron basis).
    """
    if not isinstance(model, Transformer) or not isinstance(task, ModularArithmetic):
        raise TypeError("modular_truth needs a Transformer and its ModularArithmetic task")
    check_where(model, "mlp_post", layer)
    if task.op == "/":
        raise ValueError("modular_truth scores functions on all p² pairs; division leaves out b = 0")
    key = embedding_key_frequencies(model, task) if key is None else tuple(key)
    every = task.all_pairs()
    table = captured_rows(model, every.tokens, "mlp_post", layer, (2,)).reshape(task.p, task.p, -1)
    random_dirs = jax.random.normal(jax.random.PRNGKey(SPLICE_SEED), (n_random, table.shape[-1]))
    random = {name: float(v.mean()) for name, v in key_frequency_fractions(table, random_dirs, key).items()}

    def score(decomposition) -> dict[str, float]:
        fractions = key_frequency_fractions(table, alive_rows(decomposition.directions), key)
        return {**{name: float(v.mean()) for name, v in fractions.items()},
                **{f"random_{name}": v for name, v in random.items()}}

    d_mlp = model.config.d_mlp
    return GroundTruth(
        name=f"modular {task.op} mod {task.p} (key {', '.join(map(str, key))})",
        sample=activation_sampler(model, task, "mlp_post", layer, positions=(2,)), d=d_mlp, score=score,
        splice=model_splice(model, task, "mlp_post", layer, every), neurons=jnp.eye(d_mlp))
