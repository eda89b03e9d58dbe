"""Stochastic Parameter Decomposition (Bushnaq, Braun & Sharkey 2025): rank-1 subcomponents of a model's weight
matrices, causal-importance MLPs, stochastic masks, and the scores against the toy models' known mechanisms."""

from toymi.decompose.parameters.components import Subcomponents, init_subcomponents
from toymi.decompose.parameters.importance import (
    ImportanceMLPs, causal_importance, init_importance, lower_leaky_hard_sigmoid, upper_leaky_hard_sigmoid,
)
from toymi.decompose.parameters.losses import SPDParams, spd_losses
from toymi.decompose.parameters.spd import SPDConfig, SPDHyper, TrainedSPD, spd_hyper, stack_spd_hypers, train_spd
from toymi.decompose.parameters.targets import Target, model_targets, substitute

__all__ = [
    "ImportanceMLPs", "SPDConfig", "SPDHyper", "SPDParams", "Subcomponents", "Target", "TrainedSPD",
    "causal_importance", "init_importance", "init_subcomponents", "lower_leaky_hard_sigmoid", "model_targets",
    "spd_hyper", "spd_losses", "stack_spd_hypers", "substitute", "train_spd", "upper_leaky_hard_sigmoid",
]
