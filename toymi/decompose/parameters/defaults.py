"""SPD's starting settings for a model, by its kind: the paper's and the reference code's coefficients, which the
recovery benchmark (`toymi.decompose.settings`) and `toymi view RUN --spd` (`toymi.views.spd_page`) both use.

| model | C | importance coefficient | p | lr | batch | source |
|---|---|---|---|---|---|---|
| TMS 5-2 / 40-10 | 20 / 200 | 3e-3 / 1e-4 | 1 / 2 | 1e-3 | 4096 | Bushnaq et al. 2025 |
| other TMS shapes | 5 n | 1e-4 | 2 | 1e-3 | 4096 | 40-10's |
| residual MLP | 100 | 1e-5 | 2 | 2e-3 | 2048 | the paper's compressed computation |
| transformer | 64 | 1e-2 | 0.1 | 1e-3 | 16 | the reference's induction config (C 100 there), faithfulness coefficient 100 |
| either, compared by binary KL (AND gates) | 100 | 1e-3 | 2 | the kind's | the kind's | README's AND-gate sweep |

The batch sizes are the paper's; what fits a CPU is smaller (each caller picks its own steps and batch).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx

# Bushnaq et al.'s (C, importance coefficient, p) for TMS 5-2 and 40-10; other shapes take 40-10's with C = 5n.
TMS_SPD = {(5, 2): (20, 3e-3, 1.0), (40, 10): (200, 1e-4, 2.0)}
# The paper's compressed computation (C, coefficient, p), lr 2e-3.
RESIDUAL_MLP_SPD = (100, 1e-5, 2.0)
# The reference code's induction config (goodfire-ai/spd `spd/experiments/ih/ih_config.yaml`: coefficient 1e-2,
# p = 0.1, faithfulness coefficient 100, batch 16, KL output loss), with C 64 rather than 100 to fit 2 CPU cores.
INDUCTION_SPD = (64, 1e-2, 0.1)
# Outputs compared by binary KL (the AND gates' sigmoids, `Task.output_comparison`), whose scale is not MSE's on
# logits, so neither kind's coefficient carries over: 1e-3 is the best of README's sweep on the AND-gate residual
# MLP (10,000 × 512: every input gets a `W_in` subcomponent of its own from 1e-4 to 1e-3, the most gates an exclusive
# `W_out` one at 1e-3, and 3e-3 gives up the reconstruction).
BINARY_KL_SPD = (100, 1e-3, 2.0)


@dataclasses.dataclass(frozen=True)
class SPDDefaults:
    """One model's starting SPD settings (the module docstring's table)."""

    C: int
    importance_coef: float
    p: float
    lr: float = 1e-3
    batch_size: int = 4096
    faithfulness_coef: float = 1.0


def _tms(model) -> SPDDefaults:
    n, m = model.config.n_features, model.config.d_hidden
    return SPDDefaults(*TMS_SPD.get((n, m), (5 * n, 1e-4, 2.0)))


DEFAULTS = {"tms": _tms,
            "residual_mlp": lambda model: SPDDefaults(*RESIDUAL_MLP_SPD, lr=2e-3, batch_size=2048),
            "transformer": lambda model: SPDDefaults(*INDUCTION_SPD, batch_size=16, faithfulness_coef=100.0)}


def spd_defaults(model: eqx.Module, output_loss: str = "auto") -> SPDDefaults:
    """The starting settings for `model` (by `model.kind`), its outputs compared by `output_loss`
    (`SPDConfig.output_loss`; binary KL brings its own coefficient: `BINARY_KL_SPD`)."""
    kind = getattr(model, "kind", type(model).__name__)
    if kind not in DEFAULTS:
        raise TypeError(f"SPD has no settings for a {kind} model (supported kinds: {', '.join(DEFAULTS)})")
    defaults = DEFAULTS[kind](model)
    if output_loss != "binary_kl":
        return defaults
    C, coef, p = BINARY_KL_SPD
    return dataclasses.replace(defaults, C=C, importance_coef=coef, p=p, faithfulness_coef=1.0)
