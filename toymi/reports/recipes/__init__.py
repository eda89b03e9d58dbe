"""Each task's default dissection (`toymi dissect RUN`, `toymi.reports.dissect.dissect_run`).

A recipe is `recipe(run, report, smoke)`: it reads the run (`toymi.load_run`), computes with `toymi.dissect`'s and
`toymi.analysis`'s pure functions, draws with `toymi.plot`, and adds sections, figures and numbers to the `Report`.
`smoke=True` asks for the smallest settings that still exercise every step (tests and CI).
"""

from __future__ import annotations

from toymi.reports.recipes.addition import addition_recipe
from toymi.reports.recipes.and_gates import and_gates_recipe
from toymi.reports.recipes.chess import chess_recipe
from toymi.reports.recipes.compressed_computation import compressed_computation_recipe
from toymi.reports.recipes.induction import induction_recipe
from toymi.reports.recipes.modular import modular_recipe
from toymi.reports.recipes.tms import tms_recipe

RECIPES = {
    "modular_arithmetic": modular_recipe,
    "chess": chess_recipe,
    "induction": induction_recipe,
    "addition": addition_recipe,
    "tms": tms_recipe,
    "and_gates": and_gates_recipe,
    "compressed_computation": compressed_computation_recipe,
}
