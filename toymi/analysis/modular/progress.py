"""Grokking progress measures (Nanda et al. 2023) over a checkpoint series, as one vmapped, compiled call.

Train and test loss alone show a sudden jump; these measures show the circuit forming smoothly before it:

- **restricted loss**: train loss of the logits kept only along the key frequencies' `cos/sin(w_k (a+b))`
  directions over the (a, b) grid (plus each output's mean). Falls as the Fourier circuit forms;
- **excluded loss**: train loss with those directions removed. Rises during circuit formation, when the network's
  train performance comes to depend on the generalising circuit rather than on memorisation;
- **Gini** of the Fourier components of `W_E` and of the neuron-logit map `W_out @ W_U`: sparsity in frequency;
- **fraction of neurons explained** by one frequency (> `threshold` of their variance over the grid);
- **total weight norm** (sum of squared parameters): falls in the cleanup phase, under weight decay.

`progress_measures(series, task, key_freqs)` maps one per-checkpoint function over the stacked series
(`Run.checkpoint_series()`) with `vmap` (or `lax.map` in chunks, to bound memory): one program, compiled once.
Key frequencies come from the final model (`toymi.analysis.modular.key_frequencies.neuron_key_frequencies`), as in
the paper.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from toymi.analysis.modular.fourier import (component_norms, frequency_mask, frequency_norms, gini, n_frequencies,
                                           neuron_frequency_fractions)
from toymi.host import to_device
from toymi.tasks.base import token_nll
from toymi.tasks.modular import ModularArithmetic, fourier_basis


# ---- the (a, b) grid ------------------------------------------------------------------------------------------------

def grid_tokens(p: int) -> Int[Array, "pair 3"]:
    """Every input `a b =` over Z_p, row `a * p + b`."""
    a, b = np.divmod(np.arange(p * p), p)
    return to_device(np.stack([a, b, np.full(p * p, p)], 1), np.int32)


def train_mask(task: ModularArithmetic) -> Bool[Array, "a b"]:
    """Which (a, b) pairs are in the task's training set."""
    tokens = np.asarray(task.train.tokens)
    mask = np.zeros((task.p, task.p), bool)
    mask[tokens[:, 0], tokens[:, 1]] = True
    return jnp.asarray(mask)


def grid_outputs(model: eqx.Module, p: int) -> tuple[Float[Array, "a b c"], Float[Array, "a b neuron"]]:
    """Logits and the last layer's MLP neurons, at the `=` position, for every (a, b) (no input checks: traceable)."""
    if getattr(model.config, "attn_only", True):
        raise ValueError("grokking progress measures need a transformer with an MLP (its neurons)")
    capture = frozenset({"mlp_post"})
    logits, acts = jax.vmap(lambda t: model.forward(t, capture))(grid_tokens(p))
    neurons = acts["mlp_post", -1][:, -1]  # [pair, neuron]
    return logits[:, -1].reshape(p, p, -1), neurons.reshape(p, p, -1)


# ---- restricted and excluded loss -------------------------------------------------------------------------------

def sum_directions(p: int) -> Float[Array, "freq 2 a b"]:
    """Unit vectors `cos(w_k (a+b))`, `sin(w_k (a+b))` over the (a, b) grid, w_k = 2πk/p, k = 1..K. Orthonormal."""
    K = n_frequencies(p)
    s = (np.arange(p)[:, None] + np.arange(p)[None, :]) % p
    angle = 2 * np.pi * np.arange(1, K + 1)[:, None, None] * s / p
    dirs = np.stack([np.cos(angle), np.sin(angle)], 1)
    return jnp.asarray(dirs / np.sqrt(p * p / 2), jnp.float32)


def key_projection(logits: Float[Array, "a b c"], key_mask: Bool[Array, " freq"]) -> Float[Array, "a b c"]:
    """Each output's logits over the grid projected onto the key frequencies' `cos/sin(w_k (a+b))` directions."""
    dirs = sum_directions(logits.shape[0])
    coefficients = jnp.einsum("kxab,abc->kxc", dirs, logits) * key_mask[:, None, None]
    return jnp.einsum("kxab,kxc->abc", dirs, coefficients)


def restricted_logits(logits: Float[Array, "a b c"], key_mask: Bool[Array, " freq"]) -> Float[Array, "a b c"]:
    """Only the key directions, plus each output's mean over the grid (the directions have mean zero)."""
    return key_projection(logits, key_mask) + logits.mean((0, 1))


def excluded_logits(logits: Float[Array, "a b c"], key_mask: Bool[Array, " freq"]) -> Float[Array, "a b c"]:
    """The logits with the key directions removed."""
    return logits - key_projection(logits, key_mask)


def grid_loss(logits: Float[Array, "a b c"], mask: Bool[Array, "a b"]) -> Float[Array, ""]:
    """Cross-entropy of `(a + b) mod p` over the pairs in `mask`."""
    p = logits.shape[0]
    target = (jnp.arange(p)[:, None] + jnp.arange(p)[None, :]) % p
    return (token_nll(logits, target) * mask).sum() / mask.sum()


def restricted_loss(logits: Float[Array, "a b c"], key_mask: Bool[Array, " freq"],
                    mask: Bool[Array, "a b"]) -> Float[Array, ""]:
    return grid_loss(restricted_logits(logits, key_mask), mask)


def excluded_loss(logits: Float[Array, "a b c"], key_mask: Bool[Array, " freq"],
                  mask: Bool[Array, "a b"]) -> Float[Array, ""]:
    return grid_loss(excluded_logits(logits, key_mask), mask)


# ---- one checkpoint, and the series -------------------------------------------------------------------------------

def weight_norm(model: eqx.Module) -> Float[Array, ""]:
    """Sum of squared parameters (every floating-point array leaf)."""
    return sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))


def checkpoint_measures(
    model: eqx.Module, train: Bool[Array, "a b"], key_mask: Bool[Array, " freq"], threshold: float = 0.85,
) -> dict[str, Array]:
    """Every progress measure of one model (see the module docstring); `progress_measures` vmaps it."""
    p = train.shape[0]
    basis = fourier_basis(p)[0]
    logits, neurons = grid_outputs(model, p)
    embed = component_norms(model.W_E[:p], basis)  # [p]
    neuron_logit = model.W_out[-1] @ model.W_U  # [neuron, p]
    logit_components = component_norms(neuron_logit, basis, axis=1)
    fractions = neuron_frequency_fractions(neurons, basis)  # [K, neuron]
    return {
        "train_loss": grid_loss(logits, train),
        "test_loss": grid_loss(logits, ~train),
        "restricted_loss": restricted_loss(logits, key_mask, train),
        "excluded_loss": excluded_loss(logits, key_mask, train),
        "gini_embed": gini(embed),
        "gini_neuron_logit": gini(logit_components),
        "embed_spectrum": frequency_norms(embed),  # [K + 1]
        "neuron_logit_spectrum": frequency_norms(logit_components),  # [K + 1]
        "frac_neurons_explained": (fractions.max(0) > threshold).mean(),
        "key_frac_neurons_explained": ((fractions * key_mask[:, None]).max(0) > threshold).mean(),
        "weight_norm": weight_norm(model),
    }


@eqx.filter_jit
def _series_measures(series, train, key_mask, threshold, chunk_size):
    params, static = eqx.partition(series, eqx.is_array)

    def one(leaves):
        return checkpoint_measures(eqx.combine(leaves, static), train, key_mask, threshold)

    if chunk_size is None:
        return jax.vmap(one)(params)
    return jax.lax.map(one, params, batch_size=chunk_size)


def progress_measures(
    series: eqx.Module, task: ModularArithmetic, key_freqs, threshold: float = 0.85, chunk_size: int | None = None,
) -> dict[str, Array]:
    """Progress measures at every checkpoint of a stacked series, as one compiled call.

    **Arguments:**

    - `series`: models stacked on a leading checkpoint axis (`Run.checkpoint_series()`).
    - `task`: the `ModularArithmetic` task (`op="+"`) they were trained on; its train split scores the losses.
    - `key_freqs`: frequencies 1..(p-1)/2 to restrict to or exclude (`neuron_key_frequencies(final_model, task)`).
    - `threshold`: fraction of variance above which a neuron counts as explained by one frequency.
    - `chunk_size`: None maps with `vmap` (all checkpoints at once); an int maps in chunks of that many
      (`lax.map`), still one program, to bound memory for long series or large p.

    **Returns:** a dict of arrays with the checkpoint axis first: scalars `train_loss`, `test_loss`,
    `restricted_loss`, `excluded_loss`, `gini_embed`, `gini_neuron_logit`, `frac_neurons_explained`,
    `key_frac_neurons_explained` (by a key frequency), `weight_norm`, and spectra `embed_spectrum`,
    `neuron_logit_spectrum` `[checkpoint, K + 1]` (index 0 the constant, k frequency k).
    """
    check_task(task)
    W_E = getattr(series, "W_E", None)
    if W_E is None or W_E.ndim != 3:
        raise ValueError("series must be transformers stacked on a leading checkpoint axis (Run.checkpoint_series()); "
                         f"got W_E of shape {None if W_E is None else W_E.shape}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return _series_measures(series, train_mask(task), frequency_mask(key_freqs, task.p), float(threshold),
                            chunk_size)


def grokking_phases(steps, measures: dict, chance_loss: float, settled: float = 0.95) -> dict[str, int | None]:
    """Nanda et al.'s three phases, located on a checkpoint series's progress measures.

    - `memorisation_end`: the checkpoint with the lowest excluded loss. Until then train and excluded loss fall
      together: the memorising solution does not use the key frequencies. Afterwards the generalising circuit
      forms and removing the key frequencies hurts more and more (circuit formation).
    - `cleanup_start`: the first later checkpoint whose test loss is below chance (`chance_loss`, log p): the
      circuit now outweighs the memorised answers on unseen pairs, and weight decay is removing the latter.
    - `cleanup_end`: the first checkpoint from `cleanup_start` on at which the Gini coefficient of W_E's Fourier
      components has reached `settled` of its maximum over the series: the embedding has become sparse in the
      Fourier basis, i.e. the memorising components are gone.

    Boundaries a series does not reach (the excluded loss still falling at its last checkpoint, or the test loss
    never below chance) are None.

    **Arguments:** `steps` `[checkpoint]`; `measures` from `progress_measures` (`excluded_loss`, `test_loss`,
    `gini_embed`); `chance_loss`: the loss of a uniform guess, log p; `settled`: the fraction for `cleanup_end`.
    **Returns:** `{"memorisation_end", "cleanup_start", "cleanup_end"}`: steps, or None.
    """
    steps = np.asarray(steps, float)
    if steps.ndim != 1 or len(steps) < 2 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"need at least 2 increasing checkpoint steps, got {steps}")
    series = {k: np.asarray(measures[k], float) for k in ("excluded_loss", "test_loss", "gini_embed")}
    wrong = {k: v.shape for k, v in series.items() if v.shape != steps.shape}
    if wrong:
        raise ValueError(f"measures must have one value per step ({steps.shape}); got {wrong}")
    phases = dict.fromkeys(("memorisation_end", "cleanup_start", "cleanup_end"))
    end = int(np.argmin(series["excluded_loss"]))
    if end == len(steps) - 1:
        return phases
    phases["memorisation_end"] = int(steps[end])
    below = np.flatnonzero(series["test_loss"][end:] < chance_loss)
    if not below.size:
        return phases
    start = end + int(below[0])
    phases["cleanup_start"] = int(steps[start])
    gini = series["gini_embed"]
    done = start + int(np.argmax(gini[start:] >= settled * gini.max()))
    phases["cleanup_end"] = int(steps[done])
    return phases


def check_task(task) -> None:
    if not isinstance(task, ModularArithmetic) or task.op != "+":
        raise ValueError("grokking progress measures are defined for modular addition (ModularArithmetic, op='+'): "
                         "the restricted/excluded directions are cos/sin(w_k (a+b))")


__all__ = ["checkpoint_measures", "excluded_logits", "excluded_loss", "grid_loss", "grid_outputs", "grid_tokens",
           "grokking_phases", "key_projection", "progress_measures", "restricted_logits",
           "restricted_loss", "sum_directions", "train_mask", "weight_norm"]
