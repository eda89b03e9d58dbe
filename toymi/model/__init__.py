"""The model kinds (each in one file: config, named sites, module, registration), activations and interventions."""

from toymi.errors import ConfigError
from toymi.model.activations import Activations
from toymi.model.interventions import (
    FunctionIntervention,
    Intervention,
    apply_function,
    index_mask,
    mean_ablate,
    patch,
    resample_ablate,
    steer,
    zero_ablate,
)
from toymi.model.sites import available_sites
from toymi.model.hooked import HookedModel
# Importing a model kind registers it (its config, model class and site table); the transformer first, the default.
from toymi.model.block import Block
from toymi.model.transformer import SITES, ModelConfig, Transformer
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.model.tms import TMS, TMSConfig

__all__ = [
    "Activations", "Block", "ConfigError", "HookedModel", "ResidualMLP", "ResidualMLPConfig", "TMS",
    "TMSConfig", "FunctionIntervention", "Intervention", "ModelConfig", "SITES",
    "Transformer", "apply_function", "available_sites", "index_mask", "mean_ablate", "patch", "resample_ablate",
    "steer", "zero_ablate",
]
