"""`Activations`: what `run` returns beside the output, for every model kind — the captured sites, by name.

One container, built from the running model's site table (no per-kind classes). Look sites up by name:

- `acts["resid_pre"]` is stacked over layers, the layer axis just before the site's own axes (so any batch or vmap
  axes stay in front): `[layer, pos, d_model]` for one sequence, `[batch, layer, pos, d_model]` for a batch.
  Logit lens over every layer is then one einsum.
- `acts["resid_pre", 1]` is layer 1 alone.
- `acts.resid_pre` is the raw value: for a per-layer site a tuple with one array per layer, else the array; None
  for a site of the table that was not captured.

A per-layer site holds one array per layer and is stacked when looked up by name. Stacking inside the compiled
forward would copy every captured activation once more, which was a third of the cost of capturing every site
(benchmarks/capture_overhead.py); stacking on lookup pays it only for the sites you read.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.model.sites import Site

Captured = Float[Array, "..."] | tuple[Float[Array, "..."], ...]  # one array, or one per layer


class Activations(eqx.Module):
    """The captured sites of one `run` (a pytree: its arrays are the leaves; the site table is static).

    **Arguments:**

    - `values`: `{site name: array}`, a tuple of arrays (one per layer) for a per-layer site.
    - `sites`: the model's site table (`model.sites`), which says each name's axes and whether it is per-layer.
    """

    values: dict[str, Captured]
    table: tuple[Site, ...] = eqx.field(static=True)  # a tuple, so the static part of the pytree is hashable

    def __init__(self, values: dict[str, Captured], sites: dict[str, Site]):
        unknown = sorted(set(values) - set(sites))
        if unknown:
            raise KeyError(f"unknown sites {unknown}; valid sites are: {', '.join(sites)}")
        self.values = dict(values)
        self.table = tuple(sites.values())

    @property
    def sites(self) -> dict[str, Site]:
        """The site table these activations were captured with, in forward order."""
        return {s.name: s for s in self.table}

    def names(self) -> tuple[str, ...]:
        """The captured sites, in forward order."""
        return tuple(s.name for s in self.table if s.name in self.values)

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: a site of the table reads as its raw value (None if not captured).
        if not name.startswith("_") and name not in ("values", "table"):
            for site in self.table:
                if site.name == name:
                    return self.values.get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute or site {name!r}")

    def __getitem__(self, key: str | tuple[str, int]) -> Array:
        """`acts[name]` is the (layer-stacked) array; `acts[name, layer]` one layer of a per-layer site."""
        name, layer = (key, None) if isinstance(key, str) else key
        sites = self.sites
        if name not in sites:
            raise KeyError(f"unknown site {name!r}; valid sites are: {', '.join(sites)}")
        if name not in self.values:
            captured = ", ".join(self.names()) or "nothing"
            raise KeyError(f"site {name!r} was not captured (captured: {captured}); pass capture=[{name!r}] to run")
        value, site = self.values[name], sites[name]
        if not site.per_layer:
            if layer is not None:
                raise KeyError(f"site {name!r} is not per-layer; index it without a layer")
            return value
        if layer is None:
            return jnp.stack(value, axis=value[0].ndim - len(site.axes))
        if not -len(value) <= layer < len(value):
            raise IndexError(f"layer {layer} out of range for a model with {len(value)} layers")
        return value[layer]

    def __contains__(self, name: str) -> bool:
        return name in self.values
