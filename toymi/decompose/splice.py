"""Splicing: run a model with a decomposition in place of one of its activations, and measure the loss recovered.

A decomposition replaces a site through toymi's own intervention mechanism (`apply_function` at the site), so
every model kind (transformer, tms, residual_mlp) and every task loss works unchanged:

- an SAE-like decomposition (`encode`/`decode`) replaces a site `x` with its reconstruction `decode(encode(x))`;
- a transcoder (anything with `predict`) replaces the MLP's output `mlp_out` with `predict(MLP input)`. The MLP
  input is read in a first pass of the same example (it is upstream of `mlp_out` in the same layer, so replacing
  `mlp_out` cannot change it): `resid_mid` through the layer's `ln2` for a transformer, `resid_pre` for a residual
  MLP. TMS has no MLP, so it takes SAEs only.

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

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float

from toymi.model.hooked import HookedModel, WrappedModel
from toymi.model.interventions import AnyIntervention, apply_function, mean_ablate, zero_ablate
from toymi.model.residual_mlp import ResidualMLP
from toymi.model.transformer import Transformer
from toymi.tasks.and_gates import AndGates, encode_tokens, gate_loss


# ---- wrappers: a model with something spliced in, still a HookedModel, so `task.loss` runs it unchanged -----------


class Intervened(WrappedModel):
    """`model` with fixed `interventions` applied on every call (e.g. a zero- or mean-ablation reference)."""

    interventions: tuple[AnyIntervention, ...]

    def forward(self, x: Array, capture: frozenset[str] = frozenset(), interventions: Sequence[AnyIntervention] = (),
                output_positions: tuple[int, ...] | None = None) -> tuple[Array, eqx.Module]:
        """The model's forward with the fixed interventions first; `output_positions` selects logits afterwards
        (the transformer's own shortcut cannot be combined with interventions)."""
        out, acts = self.model.forward(x, capture, (*self.interventions, *interventions))
        return _select(out, output_positions), acts


class Spliced(WrappedModel):
    """`model` with `decomposition` in place of `site` (built by `splice_sae` or `splice_transcoder`).

    - `source = "site"`: the decomposition reads the site it replaces (an SAE).
    - `source = "mlp_input"`: it reads the MLP's input and replaces `mlp_out` (a transcoder).
    - `exact`: add the stop-gradient error term (module docstring).
    """

    decomposition: eqx.Module
    site: str = eqx.field(static=True)
    layer: int | None = eqx.field(static=True)
    source: str = eqx.field(static=True)
    exact: bool = eqx.field(static=True)

    def forward(self, x: Array, capture: frozenset[str] = frozenset(), interventions: Sequence[AnyIntervention] = (),
                output_positions: tuple[int, ...] | None = None) -> tuple[Array, eqx.Module]:
        if self.source == "mlp_input":
            name = _mlp_input_site(self.model)
            _, acts = self.model.forward(x, frozenset({name}), interventions)
            x_in = mlp_input(self.model, acts, self.layer)
            in_axes = self.model.sites[name].axes
            fn = lambda y: self._combine(_apply(self.decomposition, x_in, in_axes, y.shape), y)  # noqa: E731
        else:
            axes = self.model.sites[self.site].axes
            fn = lambda y: self._combine(_apply(self.decomposition, y, axes, y.shape), y)  # noqa: E731
        replace = apply_function(self.site, fn, layer=self.layer)
        out, acts = self.model.forward(x, capture, (*interventions, replace))
        return _select(out, output_positions), acts

    def _combine(self, x_hat: Array, x: Array) -> Array:
        return x_hat + jax.lax.stop_gradient(x - x_hat) if self.exact else x_hat


def splice_sae(model: HookedModel, decomposition: eqx.Module, site: str, layer: int | None = None, *,
               exact: bool = False) -> Spliced:
    """`model` with `site` (at `layer`) replaced by `decomposition.decode(decomposition.encode(x))`.

    **Arguments:**

    - `model`: any `HookedModel`.
    - `decomposition`: an Equinox module with `encode` and `decode` (or `predict`, used instead when present)
      mapping `[rows, d]` to latents and back; `d` is the site's width per position.
    - `site`, `layer`: where (a per-layer site needs its layer; a site outside the layers needs None).
    - `exact`: keep the model's exact values with the stop-gradient error term.

    **Returns:** a `Spliced` model: `task.loss(spliced, batch)`, `spliced.run(...)` work as for `model`.
    """
    _check_where(model, site, layer)
    return Spliced(model, decomposition, site, layer, "site", exact)


def splice_transcoder(model: HookedModel, transcoder: eqx.Module, layer: int, *, exact: bool = False) -> Spliced:
    """`model` with layer `layer`'s `mlp_out` replaced by `transcoder.predict(MLP input)` (module docstring).

    **Raises:** `ValueError` for a model without an MLP (TMS, an attention-only transformer).
    """
    _mlp_input_site(model)
    _check_where(model, "mlp_out", layer)
    return Spliced(model, transcoder, "mlp_out", layer, "mlp_input", exact)


# ---- the MLP's input ---------------------------------------------------------------------------------------------


def _mlp_input_site(model: HookedModel) -> str:
    if isinstance(model, Transformer) and model.blocks.mlp is not None:
        return "resid_mid"
    if isinstance(model, ResidualMLP):
        return "resid_pre"
    raise ValueError(f"a transcoder replaces an MLP; this {type(model).__name__} has none "
                     "(splice an SAE at one of its sites instead)")


def mlp_input(model: HookedModel, acts: eqx.Module, layer: int) -> Float[Array, "*pos d_model"]:
    """What layer `layer`'s MLP reads, from activations that captured `resid_mid` (transformer) or `resid_pre`
    (residual MLP): the transformer's `resid_mid` goes through the layer's `ln2` when the model normalises."""
    name = _mlp_input_site(model)
    resid = acts[name, layer]
    if isinstance(model, Transformer) and model.blocks.ln2 is not None:
        norm = jax.tree.map(lambda w: w[layer], model.blocks.ln2)
        return norm(resid)[0] if resid.ndim == 2 else jax.vmap(lambda r: norm(r)[0])(resid)
    return resid


def mlp_input_site(model: HookedModel) -> str:
    """The site `mlp_input` reads (`resid_mid` or `resid_pre`); a `ValueError` for a model without an MLP."""
    return _mlp_input_site(model)


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


def _select(out: Array, positions: tuple[int, ...] | None) -> Array:
    return out if positions is None else out[np.asarray(positions)]


def _check_where(model: HookedModel, site: str, layer: int | None) -> None:
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


def task_loss(task, model: HookedModel, batch) -> Float[Array, ""]:
    """`task.loss(model, batch)`, also for a wrapped transformer on the AND-gate task (whose `gate_logits` tests
    `isinstance(model, Transformer)`, which a `Spliced` one is not)."""
    base = model
    while isinstance(base, (Spliced, Intervened)):
        base = base.model
    if isinstance(task, AndGates) and isinstance(base, Transformer) and not isinstance(model, Transformer):
        readout = (task.n_features,)
        logits = jax.vmap(lambda t: model.forward(t, output_positions=readout)[0][0])(encode_tokens(batch.x))
        return gate_loss(logits, batch.y)
    return task.loss(model, batch)


def loss_recovered(clean, spliced, reference):
    """`(reference - spliced) / (reference - clean)`: 1 = the clean loss, 0 = no better than the reference."""
    return (reference - spliced) / (reference - clean)


def model_inputs(task, model: HookedModel, batch) -> Array:
    """What `model` reads for `batch`: its tokens, its feature vectors, or (AND gates on a transformer) the tokens
    `encode_tokens` makes of them."""
    if hasattr(batch, "tokens"):
        return batch.tokens
    if isinstance(task, AndGates) and isinstance(model, Transformer):
        return encode_tokens(batch.x)
    return batch.x


def reference_losses(model: HookedModel, task, batch, site: str, layer: int | None) -> dict[str, Array]:
    """Clean loss, and the losses with `site` zero-ablated and mean-ablated (its mean over `batch`, per position)."""
    _check_where(model, site, layer)
    _, acts = model.run(model_inputs(task, model, batch), capture=[site])
    mean = _site_value(acts, site, layer).mean(0)
    zero = Intervened(model, (zero_ablate(site, layer=layer),))
    meaned = Intervened(model, (mean_ablate(site, mean, layer=layer),))
    return {"loss_clean": task_loss(task, model, batch), "loss_zero_ablated": task_loss(task, zero, batch),
            "loss_mean_ablated": task_loss(task, meaned, batch)}


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
    _check_where(model, site, layer)
    if transcoder:
        _mlp_input_site(model)
    out = {name: float(v) for name, v in _losses(model, task, batch, decomposition, site, layer, transcoder).items()}
    out["loss_recovered"] = loss_recovered(out["loss_clean"], out["loss_spliced"], out["loss_zero_ablated"])
    out["loss_recovered_mean"] = loss_recovered(out["loss_clean"], out["loss_spliced"], out["loss_mean_ablated"])
    return out


@eqx.filter_jit
def _losses(model, task, batch, decomposition, site, layer, transcoder):
    source = "mlp_input" if transcoder else "site"
    losses = reference_losses(model, task, batch, site, layer)
    for name, exact in (("loss_spliced", False), ("loss_spliced_exact", True)):
        losses[name] = task_loss(task, Spliced(model, decomposition, site, layer, source, exact), batch)
    return losses
