"""A model's predictions on a task, in the task's own words: `show` (top-k next tokens per scored position) and
`generate` (continuing a prompt under the task's stopping rule)."""

from toymi.predict.generation import generate
from toymi.predict.top_predictions import Prediction, format_predictions, show

__all__ = ["Prediction", "format_predictions", "generate", "show"]
