"""`HookedModel`: what every model kind's `run` shares — input checks, capture names, intervention checks, batching —
and the interface code outside `toymi.model` asks of any model instead of testing its class.

A kind implements `forward(x, capture, interventions, output_positions)` for one example and `check_inputs(x)`; this
base gives it `model(x)` and `model.run(x, capture=..., interventions=...)`, accepting one example or a batch of them.
Every kind also answers `kind` (its registry name), `mlp_input_site()` / `mlp_input(acts, layer)` (what its MLP
reads; None for a kind without one), `neuron_basis(site, layer)` and `grid_entry(site)` (what a causal grid may
patch). `model.with_interventions([...])` is the model with fixed interventions applied on every call (`Intervened`):
an ablation reference, a decomposition spliced in, norms with fixed scales.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.model.interventions import AnyIntervention, FunctionIntervention, Intervention
from toymi.model.positions import take_positions
from toymi.model.sites import Site, check_site, resolve_capture, site_table


class HookedModel(eqx.Module):
    """Base of every model kind. Subclasses have a static `config` field and implement `forward` and
    `check_inputs`; one example is 1-D (`[pos]` tokens or `[feature]` values), a batch adds a leading axis."""

    kind: ClassVar[str]  # the model kind's registry name (`toymi.model.registry`)

    @abc.abstractmethod
    def forward(self, x: Array, capture: frozenset[str] = frozenset(), interventions: Sequence[AnyIntervention] = (),
                output_positions: tuple[int, ...] | None = None) -> tuple[Array, eqx.Module]:
        """One example, no input checks: `(output, activations)`. `output_positions` (static) keeps the output at
        those positions only (a sequence model's; a feature model, whose output has no positions, refuses it)."""

    @abc.abstractmethod
    def check_inputs(self, x) -> Array:
        """`x` as an array, or a clear error for what JAX would silently accept."""

    @property
    def sites(self) -> dict[str, Site]:
        """This model's named sites (they can depend on its config)."""
        return site_table(self.config)

    def __call__(self, x: Array) -> Array:
        return self.run(x)[0]

    # ---- the MLP and its neurons: what decompositions and transcoders read ----------------------------------------

    def mlp_input_site(self) -> str | None:
        """The site whose value (through `mlp_input`) each layer's MLP reads, or None for a model without an MLP."""
        return None

    def mlp_input(self, acts: eqx.Module, layer: int) -> Float[Array, "*pos d_model"]:
        """What layer `layer`'s MLP reads, from activations that captured `mlp_input_site()`."""
        site = self.mlp_input_site()
        if site is None:
            raise ValueError(f"this {type(self).__name__} has no MLP")
        return acts[site, layer]

    def neuron_basis(self, site: str, layer: int = 0) -> Float[Array, "d_mlp d"] | None:
        """The model's own neurons as unit rows in `site`'s space (at `layer`): the identity on `mlp_pre` and
        `mlp_post`, the columns of `W_in` on the MLP's input (what each neuron reads, when the MLP reads the site
        as it is), the rows of `W_out` on `mlp_out` (what each neuron writes); None for any other site."""
        if self.mlp_input_site() is None:
            return None
        if site in ("mlp_pre", "mlp_post"):
            return jnp.eye(self.W_in.shape[-1])
        if site == "mlp_out":
            return unit_rows(self.W_out[layer])
        if site == self.mlp_input_site():
            return unit_rows(self.W_in[layer].T)
        return None

    # ---- causal grids ------------------------------------------------------------------------------------------------

    def grid_entry(self, site: str) -> tuple[str, ...] | None:
        """For a per-layer `site` a causal grid may patch: the sites whose clean values, replaced at the patched
        layer, make everything upstream of the patch dead code (the stream entering the sub-layer, and the site
        itself); None for a site a grid cannot patch. Each kind declares its own."""
        return None

    # ---- fixed interventions -------------------------------------------------------------------------------------

    def with_interventions(self, interventions: Sequence) -> "Intervened":
        """This model with `interventions` applied on every call, before any the caller adds (same config, sites
        and input checks, so tasks and dissection use it like the model itself). Besides those of
        `toymi.model.interventions`, an intervention may be any Equinox module with `site` and
        `apply(site, layer, x, axes, n_layers)` (its arrays are the wrapper's leaves: gradients reach them), and
        one with `bind(model, x, interventions)` is first bound to each example (e.g. to read an upstream site)."""
        for intervention in interventions:
            if not hasattr(intervention, "apply") or not hasattr(intervention, "site"):
                raise TypeError(f"an intervention needs `site` and `apply`; got {type(intervention).__name__}")
            check_site(intervention.site, self.config)
        return Intervened(self, tuple(interventions))

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
    """A model around another (`model`) that changes only its `forward`: same kind, config, sites, input checks and
    MLP, so tasks and dissection use it like the model itself."""

    model: HookedModel

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def config(self):
        return self.model.config

    def check_inputs(self, x) -> Array:
        return self.model.check_inputs(x)

    def mlp_input_site(self) -> str | None:
        return self.model.mlp_input_site()

    def mlp_input(self, acts: eqx.Module, layer: int) -> Array:
        return self.model.mlp_input(acts, layer)

    def neuron_basis(self, site: str, layer: int = 0) -> Array | None:
        return self.model.neuron_basis(site, layer)

    def grid_entry(self, site: str) -> tuple[str, ...] | None:
        return self.model.grid_entry(site)


class Intervened(WrappedModel):
    """`model` with fixed `interventions` applied on every call (built by `HookedModel.with_interventions`)."""

    interventions: tuple

    def forward(self, x: Array, capture: frozenset[str] = frozenset(), interventions: Sequence[AnyIntervention] = (),
                output_positions: tuple[int, ...] | None = None) -> tuple[Array, eqx.Module]:
        """The model's forward with the fixed interventions first; `output_positions` selects the output afterwards
        (a transformer's own shortcut cannot be combined with interventions)."""
        fixed = tuple(i.bind(self.model, x, interventions) if hasattr(i, "bind") else i for i in self.interventions)
        out, acts = self.model.forward(x, capture, (*fixed, *interventions))
        return take_positions(out, output_positions), acts


def unit_rows(rows: Float[Array, "n d"]) -> Float[Array, "n d"]:
    """Each row scaled to unit norm (an all-zero row stays zero)."""
    norms = jnp.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / jnp.where(norms > 0, norms, 1.0)


def refuse_positions(model: HookedModel, output_positions) -> None:
    """A feature model's output has no positions: `output_positions` must be None."""
    if output_positions is not None:
        raise ValueError(f"a {model.kind} model's output has no positions; output_positions must be None, "
                         f"got {output_positions!r}")
