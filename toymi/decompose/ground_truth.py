"""`GroundTruth`: what a decomposition method is scored against — activations to decompose and the true features.

Every entry of the recovery benchmark (a synthetic dictionary, TMS, compressed computation, the AND-gate model,
modular addition, induction) is one `GroundTruth`, so methods and metrics never special-case a task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from jaxtyping import Array, Float, PRNGKeyArray


class Decomposition(Protocol):
    """What a scorer may read from a decomposition (an SAE, a transcoder, a baseline's `LinearDictionary`): its
    dictionary rows and its codes."""

    @property
    def directions(self) -> Float[Array, "n_latents d"]: ...

    def encode(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch n_latents"]: ...


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Activations to decompose and the directions a good decomposition should find.

    - `name`: row label in the benchmark table (e.g. `"synthetic 512→256"`, `"tms 40→10"`).
    - `sample(key, n)`: `n` activation vectors `[n, d]`, drawn on device (jit-able; static `n`). For a model-based
      truth this runs the model on fresh task inputs and captures a site, so nothing is stored on disk.
    - `features`: true directions as unit rows `[n_true, d]`, or None where the truth is not a direction set (then
      `score` says how to score it).
    - `published`: metric name → published number to beat (e.g. `{"mmcs": 0.997}`), empty where none exists.
    - `published_by_method`: where the literature reports numbers per method (Sharkey et al.'s dictionary), method
      name → its published numbers; None where `published` holds for every method (`published_for`).
    - `score`: optional extra scorer `(decomposition) -> {metric: value}` for truths that are not direction sets
      (e.g. the fraction of each latent's norm in modular addition's key frequencies, from its `directions`; or
      where induction latents fire, from its codes `encode(x)`).
    - `splice`: optional `(decomposition) -> {metric: value}` measuring the model's loss with the decomposition
      spliced in at the site (loss recovered); None for truths without a model.
    - `feature_scales`: optional `[n_true]`, each true feature's typical norm in the activations when it is active
      (mean |coefficient| × its unnormalised length). ML2R (learned component norm / true norm, as in APD/SPD) needs
      it, since `features` are unit rows; None skips ML2R.
    - `neurons`: optional `[n_neurons, d]`, the model's own neuron directions in activation space (e.g. the identity
      for an MLP's hidden layer), scored as the "neuron basis" baseline; None where the site has no neuron basis.
    - `io_sample`: for a truth at an MLP's output (`mlp_out`), `(key, n) -> (x_in [n, d_in], y [n, d])`: the MLP's
      input and output on the same fresh examples, a transcoder's training stream; None elsewhere. Transcoders are
      scored like SAEs: their decoder rows against `features`, their prediction of `y` for variance explained.
    - `transcoder_splice`: with `io_sample`, `(transcoder) -> {metric: value}`: the loss with the transcoder in
      place of the whole MLP.
    """

    name: str
    sample: Callable[[PRNGKeyArray, int], Float[Array, "n d"]]
    d: int
    features: Float[Array, "n_true d"] | None = None
    published: dict[str, float] = dataclasses.field(default_factory=dict)
    published_by_method: dict[str, dict[str, float]] | None = None
    score: Callable[[Decomposition], dict[str, float]] | None = None
    splice: Callable[[object], dict[str, float]] | None = None
    feature_scales: Float[Array, " n_true"] | None = None
    neurons: Float[Array, "n_neurons d"] | None = None
    io_sample: Callable[[PRNGKeyArray, int], tuple[Float[Array, "n d_in"], Float[Array, "n d"]]] | None = None
    transcoder_splice: Callable[[object], dict[str, float]] | None = None

    def published_for(self, method: str) -> dict[str, float]:
        """The published numbers a method's row is compared with: its own where the literature reports per method,
        else the truth's (e.g. SPD's MMCS 1.000 on TMS, shown on every row as the number to reach)."""
        if self.published_by_method is not None:
            return dict(self.published_by_method.get(method, {}))
        return dict(self.published)
