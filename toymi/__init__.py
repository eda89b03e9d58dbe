"""toymi: train toy models (transformers and the classic toy models) on synthetic tasks and dissect them, in JAX.

The public surface: the model (`Transformer`, `ModelConfig`, `Activations`, interventions), tasks
(`toymi.tasks`), their predictions in words (`show`, `generate`), specs (`Spec`), training (`toymi.train.train`) and runs (`load_run`).
"""

from toymi.model import *  # noqa: F401,F403
from toymi.model import __all__ as _model_all
from toymi.jit import jit
from toymi.predict import generate, show
from toymi.run import Run, load_run, train_or_load
from toymi.spec import Spec, TrainConfig

__all__ = [*_model_all, "Run", "Spec", "TrainConfig", "generate", "jit", "load_run", "show",
           "train_or_load"]
