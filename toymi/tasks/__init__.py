"""Synthetic tasks, each with its data or sampler, scored positions, metrics and ground truth."""

from __future__ import annotations

import inspect

from toymi.errors import UnknownName

from toymi.tasks.addition import Addition
from toymi.tasks.and_gates import AndGates
from toymi.tasks.base import Batch, Task, masked_accuracy, masked_cross_entropy
from toymi.tasks.chess import ChessMoves
from toymi.tasks.compressed_computation import CompressedComputation
from toymi.tasks.induction import Induction
from toymi.tasks.modular import ModularArithmetic, fourier_basis
from toymi.tasks.tms import ToyModelsOfSuperposition

TASKS: dict[str, type[Task]] = {
    "modular_arithmetic": ModularArithmetic,
    "addition": Addition,
    "induction": Induction,
    "chess": ChessMoves,
    "and_gates": AndGates,
    "tms": ToyModelsOfSuperposition,
    "compressed_computation": CompressedComputation,
}


def task_class(name: str, settings: dict) -> type[Task]:
    """The task class registered as `name`, after rejecting settings it does not accept, by name."""
    if name not in TASKS:
        raise UnknownName(f"[task] name: unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise UnknownName(f"unknown settings {unknown} for task {name!r}; it accepts {sorted(accepted)}")
    return cls


def make_task(name: str, **settings) -> Task:
    """Build the task registered as `name`, rejecting unknown settings by name."""
    return task_class(name, settings)(**settings)


__all__ = ["Addition", "AndGates", "Batch", "ChessMoves", "CompressedComputation", "Induction", "ModularArithmetic",
           "TASKS", "Task", "ToyModelsOfSuperposition", "fourier_basis", "make_task", "masked_accuracy",
           "masked_cross_entropy", "task_class"]
