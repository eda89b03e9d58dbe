"""toymi: train toy models (transformers and the classic toy models) on synthetic tasks and dissect them, in JAX.

The public surface: the model (`Transformer`, `ModelConfig`, `Activations`, interventions), tasks
(`toymi.tasks`), their predictions in words (`show`, `generate`), specs (`Spec`, `Sweep`), training
(`toymi.experiment.train`, `train_sweep`, `train_or_load`) and runs (`load_run`).
"""

from toymi.model import *  # noqa: F401,F403
from toymi.model import __all__ as _model_all
from toymi.jit import jit
from toymi.predict import generate, show
from toymi.experiment import Spec, Sweep, TrainConfig, train_sweep
from toymi.reuse import train_or_load
from toymi.run import Run, load_run

__all__ = [*_model_all, "Run", "Spec", "Sweep", "TrainConfig", "generate", "jit", "load_run", "show",
           "train_or_load", "train_sweep"]
