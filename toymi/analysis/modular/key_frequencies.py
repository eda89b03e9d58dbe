"""Which frequencies a modular-addition model computes with, read two ways (they can disagree on a model that has
not fully grokked, so each name says what it reads):

- `neuron_key_frequencies`: by clustering the last MLP layer's neurons over every (a, b) input, each neuron counted
  for the one frequency that explains most of its variance (Nanda et al.'s method; the progress measures use it);
- `embedding_key_frequencies`: from the weights alone, the fewest frequencies holding most of the token embedding's
  Fourier power (the decomposition benchmark's modular truth uses it).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from toymi.analysis.modular.fourier import key_frequencies_from_neurons, neuron_frequency_fractions
from toymi.analysis.modular.progress import check_task, grid_outputs
from toymi.tasks.modular import ModularArithmetic, fourier_basis


def neuron_key_frequencies(model: eqx.Module, task: ModularArithmetic, threshold: float = 0.85,
                           min_share: float = 0.05) -> np.ndarray:
    """Key frequencies of one (final) model by neuron clustering (`fourier.key_frequencies_from_neurons`): every
    frequency that is the dominant one of at least `min_share` of the neurons it explains above `threshold`."""
    check_task(task)
    return key_frequencies_from_neurons(_neuron_fractions(model, task.p), threshold, min_share)


@eqx.filter_jit
def _neuron_fractions(model: eqx.Module, p: int) -> Float[Array, "freq neuron"]:
    # One compiled call: run eagerly, the Fourier transform's few ops each compiled on their own (seconds in all).
    return neuron_frequency_fractions(grid_outputs(model, p)[1], fourier_basis(p)[0])


def embedding_key_frequencies(model: eqx.Module, task: ModularArithmetic, coverage: float = 0.8) -> tuple[int, ...]:
    """The frequencies the embedding uses: the fewest whose (cos k, sin k) components of `W_E[:p]` hold at least
    `coverage` of its non-constant Fourier power (Nanda et al.: a handful of outliers in a grokked model)."""
    basis, _ = fourier_basis(task.p)
    power = jnp.sum((basis @ model.W_E[: task.p]) ** 2, axis=1)  # [p] per component
    per_k = np.asarray(power[1::2] + jnp.pad(power[2::2], (0, len(power[1::2]) - len(power[2::2]))))
    order = np.argsort(-per_k)
    cumulative = np.cumsum(per_k[order]) / per_k.sum()
    count = int(np.searchsorted(cumulative, coverage) + 1)
    return tuple(sorted(int(k) + 1 for k in order[:count]))
