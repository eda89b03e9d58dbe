"""Splicing: run a model with a decomposition in place of one of its activations, and measure the loss recovered.

A decomposition replaces a site through toymi's own intervention mechanism (a `Splice` intervention, so a spliced
model is `model.with_interventions([...])`), and every model kind (transformer, tms, residual_mlp) and every task
loss works unchanged:

- an SAE-like decomposition (`encode`/`decode`) replaces a site `x` with its reconstruction `decode(encode(x))`;
- a transcoder (anything with `predict`) replaces the MLP's output `mlp_out` with `predict(MLP input)`. The MLP
  input is read in a first pass of the same example (it is upstream of `mlp_out` in the same layer, so replacing
  `mlp_out` cannot change it): `model.mlp_input` (`resid_mid` through the layer's `ln2` for a transformer,
  `resid_pre` for a residual MLP). TMS has no MLP, so it takes SAEs only.

`exact=True` adds the error term with a stop-gradient, `x_hat + stop_gradient(x - x_hat)`: the forward value is the
model's own (loss unchanged up to rounding) while gradients flow through the decomposition — what attribution
through a replacement needs. Without it the model runs on the reconstruction, and

    loss recovered = (L_ablated - L_spliced) / (L_ablated - L_clean)

is 1 for a perfect decomposition and 0 for one no better than the ablation. `splice_report` gives it against
zero-ablation and against mean-ablation (the site's mean over the batch, per position).

One vector per position: a site with a leading `pos`/`query_pos` axis is decomposed row by row with its other axes
flattened (`z` is `[pos, head·d_head]`); a site without one is a single vector.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float

from toymi.model.hooked import HookedModel, Intervened
from toymi.model.interventions import mean_ablate, zero_ablate


# ---- the splice: an intervention, so a spliced model is `model.with_interventions([...])` --------------------------


class Splice(eqx.Module):
    """An intervention putting `decomposition` in place of `site` (at `layer`); built by `splice_sae` or
    `splice_transcoder`. Its decomposition is a pytree leaf of the wrapped model, so gradients reach it.

    - `source = "site"`: the decomposition reads the site it replaces (an SAE).
    - `source = "mlp_input"`: it reads the MLP's input and replaces `mlp_out` (a transcoder); `bind` reads that
      input in a first pass of each example (`x_in`, with its site's axes `in_axes`).
    - `exact`: add the stop-gradient error term (module docstring).
    """

    decomposition: eqx.Module
    site: str = eqx.field(static=True)
    layer: int | None = eqx.field(static=True)
    source: str = eqx.field(static=True)
    exact: bool = eqx.field(static=True)
    x_in: Array | None = None
    in_axes: tuple[str, ...] = eqx.field(static=True, default=())

    def bind(self, model: HookedModel, x: Array, interventions) -> "Splice":
        """A transcoder's splice with this example's MLP input read (upstream of `mlp_out` in the same layer, so
        replacing `mlp_out` cannot change it); an SAE's as it is."""
        if self.source != "mlp_input":
            return self
        name = model.mlp_input_site()
        _, acts = model.forward(x, frozenset({name}), interventions)
        return Splice(self.decomposition, self.site, self.layer, self.source, self.exact,
                      model.mlp_input(acts, self.layer), model.sites[name].axes)

    def apply(self, site: str, layer: int | None, x: Array, axes: tuple[str, ...], n_layers: int) -> Array:
        del n_layers  # `splice_sae` checked the layer
        if site != self.site or (self.layer is not None and layer is not None and layer != self.layer):
            return x
        x_hat = (_apply(self.decomposition, self.x_in, self.in_axes, x.shape) if self.source == "mlp_input"
                 else _apply(self.decomposition, x, axes, x.shape))
        return x_hat + jax.lax.stop_gradient(x - x_hat) if self.exact else x_hat


def splice_sae(model: HookedModel, decomposition: eqx.Module, site: str, layer: int | None = None, *,
               exact: bool = False) -> Intervened:
    """`model` with `site` (at `layer`) replaced by `decomposition.decode(decomposition.encode(x))`.

    **Arguments:**

    - `model`: any `HookedModel`.
    - `decomposition`: an Equinox module with `encode` and `decode` (or `predict`, used instead when present)
      mapping `[rows, d]` to latents and back; `d` is the site's width per position.
    - `site`, `layer`: where (a per-layer site needs its layer; a site outside the layers needs None).
    - `exact`: keep the model's exact values with the stop-gradient error term.

    **Returns:** `model.with_interventions([Splice(...)])`: `task.loss(spliced, batch)`, `spliced.run(...)` work as
    for `model`.
    """
    check_where(model, site, layer)
    return model.with_interventions([Splice(decomposition, site, layer, "site", exact)])


def splice_transcoder(model: HookedModel, transcoder: eqx.Module, layer: int, *, exact: bool = False) -> Intervened:
    """`model` with layer `layer`'s `mlp_out` replaced by `transcoder.predict(MLP input)` (module docstring).

    **Raises:** `ValueError` for a model without an MLP (TMS, an attention-only transformer).
    """
    mlp_input_site(model)
    check_where(model, "mlp_out", layer)
    return model.with_interventions([Splice(transcoder, "mlp_out", layer, "mlp_input", exact)])


def mlp_input_site(model: HookedModel) -> str:
    """`model.mlp_input_site()` (what `model.mlp_input` reads); a `ValueError` for a model without an MLP."""
    name = model.mlp_input_site()
    if name is None:
        raise ValueError(f"a transcoder replaces an MLP; this {type(model).__name__} has none "
                         "(splice an SAE at one of its sites instead)")
    return name


# ---- helpers ----------------------------------------------------------------------------------------------------


def per_position_rows(x: Array, axes: tuple[str, ...]) -> Float[Array, "rows d"]:
    """One example's site value as rows to decompose: one per position when the site has a leading `pos` axis
    (its other axes flattened), else one row."""
    return x.reshape(x.shape[0], -1) if axes and axes[0] in ("pos", "query_pos") else x.reshape(1, -1)


def reconstruct(decomposition: eqx.Module, rows: Float[Array, "rows d_in"]) -> Float[Array, "rows d_out"]:
    """`decomposition.predict(rows)` if it has `predict` (a transcoder), else `decode(encode(rows))`."""
    if hasattr(decomposition, "predict"):
        return decomposition.predict(rows)
    if hasattr(decomposition, "encode") and hasattr(decomposition, "decode"):
        return decomposition.decode(decomposition.encode(rows))
    raise TypeError(f"{type(decomposition).__name__} has neither `predict` nor `encode`/`decode`")


def _apply(decomposition, x_in: Array, in_axes: tuple[str, ...], out_shape: tuple[int, ...]) -> Array:
    rows = reconstruct(decomposition, per_position_rows(x_in, in_axes))
    if rows.size != int(np.prod(out_shape)):
        raise ValueError(f"the decomposition gives {rows.shape} for a site of shape {out_shape}: "
                         "its output width does not match the site's width per position")
    return rows.reshape(out_shape)


def check_where(model: HookedModel, site: str, layer: int | None) -> None:
    if site not in model.sites:
        raise KeyError(f"unknown site {site!r}; valid sites are: {', '.join(model.sites)}")
    per_layer = model.sites[site].per_layer
    n_layers = getattr(model.config, "n_layers", 0)
    if per_layer and (layer is None or isinstance(layer, bool) or not isinstance(layer, int)
                      or not 0 <= layer < n_layers):
        raise ValueError(f"site {site!r} is per-layer: give a layer in [0, {n_layers}), got {layer!r}")
    if not per_layer and layer is not None:
        raise ValueError(f"site {site!r} is not per-layer: drop layer={layer!r}")


def _site_value(acts: eqx.Module, site: str, layer: int | None) -> Array:
    return acts[site] if layer is None else acts[site, layer]


# ---- losses ------------------------------------------------------------------------------------------------------


def loss_recovered(clean, spliced, reference):
    """`(reference - spliced) / (reference - clean)`: 1 = the clean loss, 0 = no better than the reference."""
    return (reference - spliced) / (reference - clean)


def reference_losses(model: HookedModel, task, batch, site: str, layer: int | None) -> dict[str, Array]:
    """Clean loss, and the losses with `site` zero-ablated and mean-ablated (its mean over `batch`, per position)."""
    check_where(model, site, layer)
    _, acts = model.run(task.model_inputs(batch, model.kind), capture=[site])
    mean = _site_value(acts, site, layer).mean(0)
    zero = model.with_interventions([zero_ablate(site, layer=layer)])
    meaned = model.with_interventions([mean_ablate(site, mean, layer=layer)])
    return {"loss_clean": task.loss(model, batch), "loss_zero_ablated": task.loss(zero, batch),
            "loss_mean_ablated": task.loss(meaned, batch)}


def splice_report(model: HookedModel, task, batch, decomposition: eqx.Module, site: str, layer: int | None = None,
                  *, transcoder: bool = False) -> dict[str, float]:
    """Losses with `decomposition` spliced in, and the loss recovered against zero- and mean-ablation.

    **Arguments:**

    - `model`, `task`, `batch`: the model, its task and the batch the losses are measured on.
    - `decomposition`: an SAE-like module (`encode`/`decode`) or, with `transcoder=True`, a transcoder (`predict`
      from the MLP input; `site` must then be `"mlp_out"`).
    - `site`, `layer`: what it replaces.

    **Returns:** `loss_clean`, `loss_zero_ablated`, `loss_mean_ablated`, `loss_spliced` (reconstruction),
    `loss_spliced_exact` (with the error term; equals `loss_clean` up to rounding), `loss_recovered` (zero-ablation
    reference) and `loss_recovered_mean` (mean-ablation reference), as Python floats. Everything is one compiled
    call (compiled once per model, task and decomposition shape).
    """
    if transcoder and site != "mlp_out":
        raise ValueError(f"a transcoder replaces 'mlp_out', not {site!r}")
    check_where(model, site, layer)
    if transcoder:
        mlp_input_site(model)
    out = {name: float(v) for name, v in _losses(model, task, batch, decomposition, site, layer, transcoder).items()}
    out["loss_recovered"] = loss_recovered(out["loss_clean"], out["loss_spliced"], out["loss_zero_ablated"])
    out["loss_recovered_mean"] = loss_recovered(out["loss_clean"], out["loss_spliced"], out["loss_mean_ablated"])
    return out


@eqx.filter_jit
def _losses(model, task, batch, decomposition, site, layer, transcoder):
    source = "mlp_input" if transcoder else "site"
    losses = reference_losses(model, task, batch, site, layer)
    for name, exact in (("loss_spliced", False), ("loss_spliced_exact", True)):
        spliced = model.with_interventions([Splice(decomposition, site, layer, source, exact)])
        losses[name] = task.loss(spliced, batch)
    return losses
