"""The replacement model of a transformer's attribution graph (`toymi.circuits.transformer_graph`): each MLP
replaced by a transcoder per layer (`as_replacements`; `neuron_transcoders`: the model's own ReLU or GELU neurons,
exact), and everything nonlinear frozen at its value on one example (`freeze`): the attention patterns, the normalisers'
scales and the latents. `frozen_forward` runs that model, through the model's own forward pass and sites, with its
nodes moved (the input embeddings, the latents, the error nodes): the result is affine in the moves, so JAX's
derivatives of it are the graph's virtual weights.

How the freezing goes through the sites: the patterns and scales are `patch`ed to their clean values, the input
nodes enter as a `steer` of `resid_pre` at layer 0, and each MLP's output is replaced by a `FrozenMLP` intervention
writing `z @ W_dec + b_dec + error (+ mlp_input @ W_skip)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.decompose.transcoder import ELEMENTWISE, Transcoder, mlp_transcoder
from toymi.model.interventions import patch, steer
from toymi.model.layer_stack import layer_of

_SCALE_SITES = ("ln1_scale", "ln2_scale")  # per layer; `ln_final_scale` is one


def neuron_transcoders(model) -> tuple[Transcoder, ...]:
    """The model's own MLP neurons as transcoders, one per layer (`mlp_transcoder`: exact, every error node is zero);
    none for an attention-only model. Any elementwise activation (ReLU, the GELUs): the graph freezes each neuron at
    its gate `value / pre-activation` (`freeze`), so its edges and its value stay exact; SoLU, whose softmax mixes
    the neurons, needs trained transcoders."""
    if mlp_layers(model) == 0:
        return ()
    if not own_neurons_exact(model):
        raise ValueError(f"the model's own neurons stand in as transcoders only for an elementwise activation "
                         f"({', '.join(ELEMENTWISE)}); this one's act_fn is {model.config.act_fn!r} (train a "
                         "transcoder per layer instead)")
    mlp = model.blocks.mlp
    return tuple(mlp_transcoder(mlp.W_in[l], mlp.b_in[l], mlp.W_out[l], mlp.b_out[l], model.config.act_fn)
                 for l in range(model.config.n_layers))


def own_neurons_exact(model) -> bool:
    """Whether a transformer's own neurons can be its replacement (`neuron_transcoders`): attention-only, or an MLP
    with an elementwise activation."""
    return mlp_layers(model) == 0 or model.config.act_fn in ELEMENTWISE


def mlp_layers(model) -> int:
    """The number of MLP layers (0 for an attention-only model: its graph has inputs and outputs alone), after a
    one-line error unless `model` is a transformer."""
    if getattr(model, "kind", None) != "transformer":
        raise TypeError(f"transformer attribution graphs need a transformer, got {type(model).__name__} "
                        "(residual MLPs: toymi.circuits.attribution_graph)")
    return 0 if model.config.attn_only else model.config.n_layers


def as_replacements(model, transcoders: Transcoder | Sequence[Transcoder]) -> tuple[Transcoder, ...]:
    """`transcoders` as a tuple, one per layer, after one-line errors for a wrong count or widths, or layers of
    different widths."""
    n_layers = mlp_layers(model)
    layers = (transcoders,) if isinstance(transcoders, Transcoder) else tuple(transcoders)
    if len(layers) != n_layers:
        raise ValueError(f"give one transcoder per MLP layer: the model has {n_layers}, got {len(layers)}")
    d = model.config.d_model
    for layer, tc in enumerate(layers):
        if not isinstance(tc, Transcoder):
            raise TypeError(f"the replacement of layer {layer} must be a Transcoder, got {type(tc).__name__}")
        if (tc.d_in, tc.d_out) != (d, d):
            raise ValueError(f"layer {layer}'s transcoder maps {tc.d_in} → {tc.d_out}; this model's MLP maps "
                             f"d_model={d} → {d}")
    widths = {tc.n_latents for tc in layers}
    if len(widths) > 1:
        raise ValueError(f"every layer's transcoder must have the same number of latents, got {sorted(widths)}")
    return layers


class FrozenMLP(eqx.Module):
    """An intervention: layer `layer`'s `mlp_out` replaced by `z @ W_dec + b_dec + error`, plus the skip of the
    MLP input this pass computed (`x_in`), which keeps the skip a linear function of the stream."""

    transcoder: Transcoder
    z: Float[Array, "pos n"]
    error: Float[Array, "pos d_model"]
    x_in: Float[Array, "pos d_model"] | None
    layer: int = eqx.field(static=True)
    site: str = eqx.field(static=True, default="mlp_out")

    def apply(self, site: str, layer: int | None, x: Array, axes, n_layers: int) -> Array:
        del axes, n_layers
        if site != self.site or layer != self.layer:
            return x
        out = self.transcoder.decode(self.z) + self.error
        return out if self.x_in is None else out + self.x_in @ self.transcoder.W_skip


class Frozen(NamedTuple):
    """One example's clean nonlinearities and node activations."""

    fixed: tuple  # patches of the patterns and normaliser scales
    inputs: Float[Array, "pos d_model"]
    latents: Float[Array, "layer pos n"]
    gates: Float[Array, "layer pos n"]  # z / pre (0 where pre = 0): the latents frozen as linear maps
    errors: Float[Array, "layer pos d_model"]
    pre: Float[Array, "layer pos n"]
    outputs: Float[Array, "readout k"]
    mlp_scales: tuple  # each layer's ln2 scale [pos], or None per layer without normalisers


def frozen_mlp_input(model, acts, layer: int, fixed_scale) -> Array:
    """What layer `layer`'s MLP reads, `resid_mid` through `ln2` with its scale `fixed_scale` (None: no norm)."""
    resid = acts["resid_mid", layer]
    if fixed_scale is None:
        return resid
    norm = layer_of(model.blocks.ln2, layer)
    return norm.apply(norm.centre_and_scale(resid)[0], fixed_scale)


def baseline_embedding(model, baseline, length: int) -> Float[Array, "pos d_model"]:
    """The embeddings (token + position) input nodes are measured from: `baseline` tokens' (checked: one sequence of
    `length`), or zeros for None. Always an array, so graphs with and without a baseline share one compiled
    program."""
    if baseline is None:
        return jnp.zeros((length, model.config.d_model))
    baseline = model.check_inputs(baseline)
    if baseline.shape != (length,):
        raise ValueError(f"the baseline must be tokens of one sequence [{length}], like the input; got shape "
                         f"{baseline.shape}")
    return model.W_E[baseline] + (model.W_pos[:length] if model.W_pos is not None else 0.0)


def freeze(model, layers, tokens, base_embedding, readout) -> Frozen:
    """`tokens`' clean run with `layers` in place of the MLPs: the patches freezing its patterns and scales, the
    input nodes (embeddings minus `base_embedding`), each latent's value and gate, the error nodes, the latents'
    pre-activations and the logits at `readout`."""
    n_layers, n_pos, mlp = model.config.n_layers, tokens.shape[0], bool(layers)
    names = {"pattern", "embed", *(("resid_mid", "mlp_out") if mlp else ())}
    if model.config.has_norm:
        names |= {*(_SCALE_SITES if mlp else _SCALE_SITES[:1]), "ln_final_scale"}
    if model.W_pos is not None:
        names.add("pos_embed")
    logits, acts = model.forward(tokens, frozenset(names))
    fixed = [patch("pattern", acts["pattern", l], layer=l) for l in range(n_layers)]
    scales = [None] * len(layers)
    if model.config.has_norm:
        fixed += [patch(s, acts[s, l], layer=l) for s in _SCALE_SITES if s in names for l in range(n_layers)]
        fixed.append(patch("ln_final_scale", acts["ln_final_scale"]))
        scales = [acts["ln2_scale", l] for l in range(len(layers))]
    embedding = acts["embed"] + (acts["pos_embed"] if model.W_pos is not None else 0.0)
    embedding = embedding - base_embedding
    x_in = [frozen_mlp_input(model, acts, l, scales[l]) for l in range(len(layers))]
    n = layers[0].n_latents if layers else 0
    pre = _stack([x @ tc.W_enc + tc.b_enc for x, tc in zip(x_in, layers)], (0, n_pos, n))
    z = _stack([tc.encode(x) for x, tc in zip(x_in, layers)], (0, n_pos, n))
    errors = _stack([acts["mlp_out", l] - tc.predict(x_in[l]) for l, tc in enumerate(layers)],
                    (0, n_pos, model.config.d_model))
    gates = jnp.where(pre != 0, z / jnp.where(pre != 0, pre, 1.0), 0.0)
    return Frozen(tuple(fixed), embedding, z, gates, errors, pre, logits[jnp.asarray(readout)], tuple(scales))


def _stack(arrays: list, empty: tuple[int, ...]) -> Array:
    """`jnp.stack(arrays)`, or zeros of shape `empty` when there are none (an attention-only model's latents)."""
    return jnp.stack(arrays) if arrays else jnp.zeros(empty)


def frozen_forward(model, layers, tokens, frozen: Frozen, d_input, d_latent, d_error, readout: tuple[int, ...],
                   follow: bool):
    """The frozen model with the nodes moved by `d_input [pos, d_model]`, `d_latent [layer, pos, n]` and `d_error
    [layer, pos, d_model]`: `(pre [layer, pos, n], logits [readout, k])`, affine in the moves. `follow=False`:
    latents are frozen values (`frozen.latents + d_latent`), so derivatives are direct edges; `follow=True`:
    latents follow their pre-activations through their frozen gates (total effects through every path)."""
    names = frozenset({"resid_mid"} if layers else ())
    interventions = frozen_interventions(model, layers, tokens, frozen, d_input, d_latent, d_error, follow)
    logits, acts = model.forward(tokens, names, interventions)
    pre = _stack([frozen_mlp_input(model, acts, l, frozen.mlp_scales[l]) @ tc.W_enc + tc.b_enc
                  for l, tc in enumerate(layers)], frozen.pre.shape)
    return pre, logits[jnp.asarray(readout)]


def frozen_interventions(model, layers, tokens, frozen: Frozen, d_input, d_latent, d_error, follow: bool) -> tuple:
    """The interventions that make `model.forward` the frozen model with its nodes moved (see `frozen_forward`):
    the patches of `frozen`, the input moves as a `steer` of `resid_pre`, and a `FrozenMLP` per layer. With skips or
    `follow`, each layer's MLP input is read in a pass with the earlier layers already replaced."""
    base = [*frozen.fixed, steer("resid_pre", d_input, layer=0)]
    needs_input = follow or any(tc.W_skip is not None for tc in layers)
    replaced = []
    for l, tc in enumerate(layers):
        x_in = None
        if needs_input:
            _, acts = model.forward(tokens, frozenset({"resid_mid"}), (*base, *replaced))
            x_in = frozen_mlp_input(model, acts, l, frozen.mlp_scales[l])
        z = frozen.latents[l] + d_latent[l]
        if follow:
            z = frozen.gates[l] * (x_in @ tc.W_enc + tc.b_enc) + d_latent[l]
        replaced.append(FrozenMLP(tc, z, frozen.errors[l] + d_error[l], x_in if tc.W_skip is not None else None,
                                  layer=l))
    return (*base, *replaced)


def no_moves(frozen: Frozen):
    """Every node unmoved: zeros shaped as the input, latent and error nodes."""
    return jnp.zeros_like(frozen.inputs), jnp.zeros_like(frozen.latents), jnp.zeros_like(frozen.errors)
