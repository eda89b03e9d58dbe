"""Where a task's inputs sit on a map: the layout a per-input value (a latent's activation, a probe's score) is drawn
in. Modular arithmetic: every (a, b) on a p × p grid; chess: the square the move just played went to, on the board."""

from __future__ import annotations

import dataclasses

import numpy as np
from jaxtyping import Int


@dataclasses.dataclass(frozen=True)
class InputMap:
    """Inputs and the map cell each belongs to.

    - `tokens`: `[n, pos]` host token ids, one row per input (a row may repeat, read at another position).
    - `positions`: `[n]` the position each input is read at.
    - `cells`: `[n]` the map cell of each input, row-major in `shape`; a value per cell is the mean over its inputs.
    - `shape`: the map's `(rows, columns)`; `axes`: the names of its rows and columns.
    """

    tokens: Int[np.ndarray, "n pos"]
    positions: Int[np.ndarray, " n"]
    cells: Int[np.ndarray, " n"]
    shape: tuple[int, int]
    axes: tuple[str, str]

    def __post_init__(self):
        n = len(self.tokens)
        if self.tokens.ndim != 2 or self.positions.shape != (n,) or self.cells.shape != (n,):
            raise ValueError(f"an InputMap needs tokens [n, pos], positions [n] and cells [n]; got "
                             f"{self.tokens.shape}, {self.positions.shape}, {self.cells.shape}")
        if n and not (0 <= self.cells.min() and self.cells.max() < self.shape[0] * self.shape[1]):
            raise ValueError(f"cells must be in [0, {self.shape[0] * self.shape[1]}) for a {self.shape} map")


def cell_means(values: np.ndarray, cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The mean of `values` `[n]` over the inputs of each cell, as a `shape` map (NaN where a cell has none)."""
    size = shape[0] * shape[1]
    counts = np.bincount(cells, minlength=size)
    sums = np.bincount(cells, weights=values, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(shape)
