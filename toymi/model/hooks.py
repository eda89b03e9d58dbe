"""`Hooks`: the per-call bookkeeping of one forward pass — apply interventions at each site, keep what was asked.

It is created by `Transformer.run` for one trace and discarded afterwards, so no state outlives a call: capture and
intervention stay pure from JAX's point of view.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Array

from toymi.model.interventions import AnyIntervention, apply_all
from toymi.model.sites import Site


class Hooks:
    def __init__(self, capture: frozenset[str], interventions: Sequence[AnyIntervention], sites: dict[str, Site],
                 n_layers: int = 0):
        self.sites = sites  # the running model's site table
        self.n_layers = n_layers  # what an intervention's layer index is checked against
        self.capture = capture
        self.interventions = tuple(interventions)
        missing = sorted({i.site for i in self.interventions} - set(sites))
        if missing:  # `run` checks this too; `forward` (grids, splices) comes here directly
            raise KeyError(f"unknown sites {missing} for this model; valid sites are: {', '.join(sites)}")
        self.targets = frozenset(i.site for i in self.interventions)
        self.records: dict[str, list[Array]] = {}

    def wants(self, site: str) -> bool:
        """Whether anything reads or changes this site (lets the model skip optional work, e.g. per-head results)."""
        return site in self.capture or site in self.targets

    def __call__(self, site: str, layer: int | None, x: Array) -> Array:
        if site in self.targets:
            x = apply_all(self.interventions, site, layer, x, self.sites[site].axes, self.n_layers)
        if site in self.capture:
            self.records.setdefault(site, []).append(x)
        return x

    def collected(self) -> dict[str, Array | tuple[Array, ...]]:
        """Captured values: a tuple with one array per layer for per-layer sites, else the array."""
        return {name: tuple(values) if self.sites[name].per_layer else values[0]
                for name, values in self.records.items()}
