"""SPD as a method of the recovery benchmark (`toymi decompose --methods SPD`), beside the activation methods.

A benchmark `Setting` whose model SPD can decompose carries a `ParameterTruth`: the model, its inputs, the SPD
settings for it and the truth's scorer (`truths_tms.score_tms`: MMCS and ML2R on `W`, which land in the main
table's MMCS and ML2R columns; `truths_compressed.score_compressed`, `truths_and_gates.score_and_gates`: features and
gates with subcomponents of their own, `truths_induction.score_induction`: the induction circuit's heads' own
subcomponents, in the truth's own table). `SPDMethod` trains all the seeds as one vmapped run (`spd.train_spd`) and
scores each; on a setting without a `ParameterTruth` (a synthetic dictionary, the grokking transformer, an MLP's
output site, whose model the neuron site's row already decomposes) it returns no rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.spd import SPDConfig, spd_hyper, stack_spd_hypers, train_spd

if TYPE_CHECKING:  # the benchmark's `Setting`; importing it here would loop (its method list holds this one)
    from toymi.decompose.methods import Setting


@dataclasses.dataclass(frozen=True)
class ParameterTruth:
    """What SPD needs to decompose a benchmark truth's model and score the result.

    - `model`: the model whose weight matrices are decomposed (`targets.model_targets`).
    - `sample(key, n)`: `n` model inputs drawn fresh, or a task's `sample`, whose batches' `inputs` are used (as
      `train_spd` reads it).
    - `score(params, seed)`: one member's metrics (`seed` draws any inputs the scorer samples).
    - `config`: the shared SPD settings; `importance_coef`, `p`: every seed's importance-minimality term.
    """

    model: object
    sample: Callable[[PRNGKeyArray, int], Array]
    score: Callable[[SPDParams, int], dict[str, float]]
    config: SPDConfig
    importance_coef: float
    p: float


@dataclasses.dataclass(frozen=True)
class SPDMethod:
    """Stochastic Parameter Decomposition on the setting's `ParameterTruth`, all seeds in one compiled run."""

    name: str = "SPD"

    def run(self, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
        del x_eval  # SPD is scored on the model's weights and its own inputs, not on activations
        truth = s.parameters
        if truth is None:
            return []
        hypers = stack_spd_hypers([spd_hyper(truth.importance_coef, truth.p)] * len(seeds))
        run = train_spd(truth.model, truth.sample, truth.config, hypers, jnp.asarray(list(seeds)))
        jax.block_until_ready(run.losses["total"])
        return [truth.score(run.member(i), seed) for i, seed in enumerate(seeds)]
