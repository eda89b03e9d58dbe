"""Interventions as data: patch, ablate, steer, or an arbitrary function, at a named site.

An `Intervention` is a pytree of arrays (which layer, which positions, which heads, the value), so a grid of them
is one stacked pytree and a sweep is one `jax.vmap` over `model.run`, compiled once:

    >>> layers = jnp.arange(model.config.n_layers)
    >>> def patched_logits(layer):
    ...     return model.run(tokens, interventions=[zero_ablate("resid_pre", layer=layer)])[0]
    >>> jax.vmap(patched_logits)(layers)   # one compile, one call

At an active site the new value is `x + value` for `steer` and `value` for every other kind, taken wherever the
layer, position mask and head mask all select. The masks address the site's `pos` (or `query_pos`) and `head`
axes. What `run` captures at a site is the value after its interventions: what flows downstream.

Indices mean what they mean in `Activations` lookup and in numpy: `layer=-1` is the last layer, `heads=-1` the last
head; `layer=None` (the default) is every layer. An index out of range is an `IndexError` when the model runs
eagerly, and an on-device error with the same words under `jit`/`vmap` (traced indices): never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from toymi.errors import CHECK_PREFIX
from toymi.model.sites import check_site, sites_named


class Intervention(eqx.Module):
    """Replace (or add to) a site's value wherever `layer`, `positions` and `heads` select.

    Build with `patch`, `zero_ablate`, `mean_ablate`, `resample_ablate` or `steer` rather than directly.
    """

    site: str = eqx.field(static=True)
    layer: Int[Array, ""] | None  # None: every layer (or a site outside the layers); negative: from the end
    positions: Array | None  # boolean mask over positions, or integer indices; None: every position
    heads: Array | None  # boolean mask over heads, or integer indices; None: every head
    add: Bool[Array, ""]  # True: x + value (steering); False: value replaces x
    value: Float[Array, "..."]  # broadcast against the site's shape

    def apply(self, site: str, layer: int | None, x: Array, axes: tuple[str, ...], n_layers: int) -> Array:
        """The site's new value; `axes` are the site's axes in the running model, which has `n_layers` layers."""
        if site != self.site:
            return x
        value = jnp.asarray(self.value, x.dtype)
        try:
            fits = jnp.broadcast_shapes(value.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"intervention value of shape {value.shape} does not broadcast to site {site!r} of shape "
                f"{x.shape} (axes {axes}); for per-example values, jax.vmap over model.run yourself"
            )
        select = jnp.ones(x.shape, bool)
        if layer is not None and self.layer is not None:
            target, x = checked_indices(self.layer, n_layers, f"layer of the {site!r} intervention", x)
            select &= target == layer
        if self.positions is not None:
            mask, x = _along(self.positions, axes, ("pos", "query_pos"), x, site)
            select &= mask
        if self.heads is not None:
            mask, x = _along(self.heads, axes, ("head",), x, site)
            select &= mask
        return jnp.where(select, jnp.where(self.add, x + value, value), x)


class FunctionIntervention(eqx.Module):
    """Escape hatch: `fn(x) -> x'` applied at `site` (at `layer`, or every layer when `layer` is None)."""

    site: str = eqx.field(static=True)
    fn: Callable[[Array], Array] = eqx.field(static=True)
    layer: int | None = eqx.field(static=True, default=None)

    def apply(self, site: str, layer: int | None, x: Array, axes: tuple[str, ...], n_layers: int) -> Array:
        del axes  # the function sees the whole site
        if site != self.site:
            return x
        if self.layer is not None and layer is not None:
            if not -n_layers <= self.layer < n_layers:  # static, so this raises at trace time, under jit too
                raise IndexError(f"layer {self.layer} of the {site!r} function intervention is out of range for a "
                                 f"model with {n_layers} layers (valid: {-n_layers}..{n_layers - 1})")
            if layer != self.layer % n_layers:
                return x
        out = self.fn(x)
        if out.shape != x.shape:
            raise ValueError(f"function intervention at {site!r} changed the shape {x.shape} -> {out.shape}")
        return out


AnyIntervention = Intervention | FunctionIntervention


def _along(selection: Array, axes: tuple[str, ...], names: tuple[str, ...], x: Array, site: str
           ) -> tuple[Array, Array]:
    """Turn a selection (boolean mask or integer indices) into a mask broadcasting along the named axis of `x`;
    returns it with `x` (carrying the on-device range check when the indices are traced)."""
    axis = next((i for i, a in enumerate(axes) if a in names), None)
    if axis is None:
        raise ValueError(f"site {site!r} has no {names[0]!r} axis in this model (axes {axes})")
    size = x.shape[axis]
    if selection.dtype == bool:
        if selection.shape != (size,):
            raise ValueError(f"mask of shape {selection.shape} for axis {axes[axis]!r} of site {site!r} "
                             f"needs shape ({size},)")
        selected = selection
    else:
        idx, x = checked_indices(selection, size, f"{axes[axis]} index of the {site!r} intervention", x)
        selected = jnp.zeros(size, bool).at[idx].set(True)
    return selected.reshape([size if i == axis else 1 for i in range(x.ndim)]), x


def checked_indices(indices: ArrayLike, size: int, what: str, x: Array) -> tuple[Array, Array]:
    """`indices` counted from the end where negative (as numpy does), after checking they lie in [-size, size).

    Concrete indices out of range raise an `IndexError` now; traced ones (under `jit` or `vmap`) get an on-device
    check with the same message, attached to `x` (returned): the computation then fails instead of selecting
    nothing, which would look exactly like an intervention with no effect.
    """
    idx = jnp.asarray(indices)
    message = f"{what} is out of range for an axis of size {size} (valid indices: {-size}..{size - 1})"
    if isinstance(idx, jax.core.Tracer):
        x = eqx.error_if(x, ((idx < -size) | (idx >= size)).any(), CHECK_PREFIX + message)
    else:
        concrete = np.asarray(idx)
        if ((concrete < -size) | (concrete >= size)).any():
            raise IndexError(f"{message}; got {concrete.tolist()}")
    return jnp.where(idx < 0, idx + size, idx), x


def index_mask(indices: ArrayLike, size: int) -> Bool[Array, " size"]:
    """A boolean mask of length `size`, True at `indices` (an int or ints; negative from the end). Concrete indices
    out of range are an IndexError; use `checked_indices` to check traced ones."""
    idx, _ = checked_indices(jnp.atleast_1d(jnp.asarray(indices)), size, "index", jnp.zeros(()))
    return jnp.zeros(size, bool).at[idx].set(True)


def _layer(layer) -> Array | None:
    """`layer` as an int32 scalar array, or None (every layer); a float or bool is a TypeError, not a rounding."""
    if layer is None:
        return None
    arr = jnp.asarray(layer)
    if arr.dtype == bool or not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"layer must be an integer (negative counts from the end) or None for every layer, "
                        f"got {layer!r} of dtype {arr.dtype}")
    if arr.ndim != 0:
        raise ValueError(f"layer must be one integer, got shape {arr.shape}; for several layers, jax.vmap over them")
    return arr.astype(jnp.int32)


def _selection(selection, what: str) -> Array | None:
    if selection is None:
        return None
    arr = jnp.asarray(selection)
    if arr.ndim > 1:
        raise ValueError(f"{what} must be an int, a list of ints or a 1-D boolean mask, got shape {arr.shape}")
    if arr.dtype != bool and not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"{what} must be integer indices or a boolean mask, got dtype {arr.dtype}")
    return jnp.atleast_1d(arr)


def _build(site, value, *, add, layer, positions, heads) -> Intervention:
    check_site(site)
    candidates = sites_named(site)  # the running model's kind decides; here, reject what no kind could mean
    if heads is not None and not any("head" in s.axes for s in candidates):
        raise ValueError(f"site {site!r} has no head axis (axes {candidates[0].axes}); drop `heads`")
    if positions is not None and not any({"pos", "query_pos"} & set(s.axes) for s in candidates):
        raise ValueError(f"site {site!r} has no position axis (axes {candidates[0].axes}); drop `positions`")
    if layer is not None and not any(s.per_layer for s in candidates):
        raise ValueError(f"site {site!r} is not per-layer; drop `layer`")
    return Intervention(
        site=site,
        layer=_layer(layer),
        positions=_selection(positions, "positions"),
        heads=_selection(heads, "heads"),
        add=jnp.asarray(add),
        value=jnp.asarray(value, jnp.float32),
    )


def patch(site: str, values: ArrayLike, *, layer=None, positions=None, heads=None) -> Intervention:
    """Replace the site with `values` (e.g. the same site captured on another input)."""
    return _build(site, values, add=False, layer=layer, positions=positions, heads=heads)


def zero_ablate(site: str, *, layer=None, positions=None, heads=None) -> Intervention:
    """Set the selected part of the site to zero."""
    return _build(site, 0.0, add=False, layer=layer, positions=positions, heads=heads)


def mean_ablate(site: str, mean: ArrayLike, *, layer=None, positions=None, heads=None) -> Intervention:
    """Replace the site with its `mean` over a reference batch, e.g. `acts["z", 0].mean(0)` from a batched run."""
    return _build(site, mean, add=False, layer=layer, positions=positions, heads=heads)


def resample_ablate(site: str, resampled: ArrayLike, *, layer=None, positions=None, heads=None) -> Intervention:
    """Replace the site with its value on a different, randomly drawn input (the caller draws it)."""
    return _build(site, resampled, add=False, layer=layer, positions=positions, heads=heads)


def steer(site: str, direction: ArrayLike, scale: ArrayLike = 1.0, *, layer=None, positions=None,
          heads=None) -> Intervention:
    """Add `scale * direction` to the site (a steering vector)."""
    value = jnp.asarray(scale, jnp.float32) * jnp.asarray(direction, jnp.float32)
    return _build(site, value, add=True, layer=layer, positions=positions, heads=heads)


def apply_function(site: str, fn: Callable[[Array], Array], *, layer: int | None = None) -> FunctionIntervention:
    """Escape hatch: run `fn` on the site's value (must keep its shape) at `layer` (negative from the end), or at
    every layer when `layer` is None."""
    check_site(site)
    if not callable(fn):
        raise TypeError(f"apply_function needs a function of the site's value, got {type(fn).__name__}")
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))):
        raise TypeError(f"layer of a function intervention must be a Python int or None, got {layer!r}")
    return FunctionIntervention(site=site, fn=fn, layer=None if layer is None else int(layer))


def apply_all(interventions: Sequence[AnyIntervention], site: str, layer: int | None, x: Array,
              axes: tuple[str, ...], n_layers: int) -> Array:
    for intervention in interventions:
        x = intervention.apply(site, layer, x, axes, n_layers)
    return x
