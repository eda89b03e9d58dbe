"""`HookedModel`: what every model kind's `run` shares — input checks, capture names, intervention checks, batching.

A kind implements `forward(x, capture, interventions)` for one example and `check_inputs(x)`; this base gives it
`model(x)` and `model.run(x, capture=..., interventions=...)`, accepting one example or a batch of them.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

import equinox as eqx
import jax
from jaxtyping import Array

from toymi.model.interventions import AnyIntervention, FunctionIntervention, Intervention
from toymi.model.sites import Site, check_site, resolve_capture, site_table


class HookedModel(eqx.Module):
    """Base of every model kind. Subclasses have a static `config` field and implement `forward` and
    `check_inputs`; one example is 1-D (`[pos]` tokens or `[feature]` values), a batch adds a leading axis."""

    @abc.abstractmethod
    def forward(self, x: Array, capture: frozenset[str] = frozenset(),
                interventions: Sequence[AnyIntervention] = ()) -> tuple[Array, eqx.Module]:
        """One example, no input checks: `(output, activations)`."""

    @abc.abstractmethod
    def check_inputs(self, x) -> Array:
        """`x` as an array, or a clear error for what JAX would silently accept."""

    @property
    def sites(self) -> dict[str, Site]:
        """This model's named sites (they can depend on its config)."""
        return site_table(self.config)

    def __call__(self, x: Array) -> Array:
        return self.run(x)[0]

    def run(
        self, x: Array, capture: Iterable[str] | str | None = None, interventions: Sequence[AnyIntervention] = (),
    ) -> tuple[Array, eqx.Module]:
        """Forward pass that captures and intervenes at named sites.

        **Arguments:**

        - `x`: one example (`[pos]` tokens for a transformer, `[feature]` values for feature models) or a batch of
          them (a leading batch axis).
        - `capture`: site names to return (`model.sites`), `"all"` for every site, or None.
        - `interventions`: built by `patch`, `zero_ablate`, `steer`, ..., applied in order at their sites. With a
          batch each is broadcast over it; for per-example values, `jax.vmap` over `run` yourself.

        **Returns:** `(output, activations)`; `activations` holds only the captured sites.
        """
        x = self.check_inputs(x)
        names = resolve_capture(capture, self.config)
        check_interventions(interventions, self.config)
        if x.ndim == 2:
            return jax.vmap(lambda one: self.forward(one, names, interventions))(x)
        return self.forward(x, names, interventions)


def check_interventions(interventions, config) -> None:
    """A list of interventions (from `patch`, `zero_ablate`, ...), each at a site of `config`'s model."""
    if isinstance(interventions, (Intervention, FunctionIntervention, str)):
        raise TypeError(f"interventions must be a list, e.g. interventions=[zero_ablate(...)]; got one "
                        f"{type(interventions).__name__}")
    for intervention in interventions:
        if not isinstance(intervention, (Intervention, FunctionIntervention)):
            raise TypeError(f"interventions must be built with patch, zero_ablate, mean_ablate, resample_ablate, "
                            f"steer or apply_function; got {type(intervention).__name__} {intervention!r:.40}")
        check_site(intervention.site, config)


class WrappedModel(HookedModel):
    """A model around another (`model`) that changes only its `forward` (a splice, fixed interventions, fixed norm
    scales): same config, same sites, same input checks, so tasks and dissection use it like the model itself."""

    model: HookedModel

    @property
    def config(self):
        return self.model.config

    def check_inputs(self, x) -> Array:
        return self.model.check_inputs(x)
