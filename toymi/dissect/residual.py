"""The residual stream as a stack: accumulated over layers, or decomposed into the components that wrote it.

Everything a transformer computes is read from and written to the residual stream, and the stream is a plain sum
of what each component wrote. So any linear read-out of the stream (the unembedding, a probe, a logit difference)
splits exactly into per-component terms. These functions lay the stream out as a stack with a `component` (or
`layer`) axis just before `pos`, so that a read-out of every component is one einsum (`toymi.dissect.logit_lens`).

Activations come from `model.run(tokens, capture=...)`, for one sequence or a batch: any leading batch axes of the
activations are kept in front.

    >>> _, acts = model.run(tokens, capture=decomposition_sites(model.config))
    >>> stack, labels = decompose_resid(model, acts)   # [batch, component, pos, d_model]
    >>> stack.sum(-3)                                   # == the final residual, before the final norm
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.model.activations import Activations
from toymi.model.transformer import ModelConfig

ACCUMULATED_SITES = ("resid_pre", "resid_post")


def decomposition_sites(config: ModelConfig) -> tuple[str, ...]:
    """The sites `decompose_resid` (and direct logit attribution) needs captured, for a model with `config`."""
    sites = ["embed", "result"]
    if config.positional_embedding == "learned":
        sites.append("pos_embed")
    if not config.attn_only:
        sites.append("mlp_out")
    if config.has_norm:
        sites.append("ln_final_scale")
    return tuple(sites)


def accumulated_resid(acts: Activations) -> Float[Array, "*batch layer_plus_1 pos d_model"]:
    """The residual stream entering every layer, then the final residual (before the final normalisation).

    Entry `l < n_layers` is `resid_pre` of layer `l`; entry `n_layers` is `resid_post` of the last layer, which is
    what the final normalisation and the unembedding read. Reading every entry with the unembedding is the logit
    lens (`toymi.dissect.logit_lens.logit_lens`).

    **Arguments:**

    - `acts`: activations with `resid_pre` and `resid_post` captured (`ACCUMULATED_SITES`).

    **Returns:** `[*batch, n_layers + 1, pos, d_model]`.
    """
    pre = _captured(acts, "resid_pre")  # [*batch, layer, pos, d_model]
    final = _captured(acts, "resid_post", -1)  # [*batch, pos, d_model]
    return jnp.concatenate([pre, final[..., None, :, :]], axis=-3)


def decompose_resid(
    model, acts: Activations, layer: int | None = None
) -> tuple[Float[Array, "*batch component pos d_model"], list[str]]:
    """The residual stream entering `layer` as a sum of the components that wrote it.

    Components, in forward order: `embed`; `pos_embed` (learned positions only); for each earlier layer `l`, every
    head's output `L{l}H{h}` (`result`, without the attention output bias) and then, with MLPs, `L{l}MLP`
    (`mlp_out` without its output bias); last, `bias`: the sum of those layers' attention and MLP output biases,
    which no head or neuron owns. The components sum to the residual exactly (up to float rounding).

    **Arguments:**

    - `model`: the `Transformer` that produced `acts` (for its biases and config).
    - `acts`: activations with `decomposition_sites(model.config)` captured.
    - `layer`: decompose `resid_pre` of this layer; None (default) or `n_layers` decomposes the final residual
      (`resid_post` of the last layer, before the final normalisation).

    **Returns:** `(stack, labels)`: `stack` is `[*batch, component, pos, d_model]`, `labels` names each component.
    """
    config = model.config
    n_layers = config.n_layers
    layer = n_layers if layer is None else layer
    if not isinstance(layer, int) or not 0 <= layer <= n_layers:
        raise ValueError(f"layer must be an int in [0, {n_layers}] (n_layers = the final residual), got {layer!r}")
    embed = _captured(acts, "embed")  # [*batch, pos, d_model]
    parts, labels = [embed[..., None, :, :]], ["embed"]
    if config.positional_embedding == "learned":
        parts.append(jnp.broadcast_to(_captured(acts, "pos_embed"), embed.shape)[..., None, :, :])
        labels.append("pos_embed")
    if layer > 0:
        heads = jnp.swapaxes(_captured(acts, "result")[..., :layer, :, :, :], -2, -3)  # [*b, layer, head, pos, d]
        per_layer = [heads]
        if not config.attn_only:
            mlp = _captured(acts, "mlp_out")[..., :layer, :, :] - model.blocks.mlp.b_out[:layer, None, :]
            per_layer.append(mlp[..., None, :, :])  # [*b, layer, 1, pos, d]
        per_layer = jnp.concatenate(per_layer, axis=-3)
        parts.append(per_layer.reshape(*per_layer.shape[:-4], -1, *per_layer.shape[-2:]))
        for l in range(layer):
            labels += [f"L{l}H{h}" for h in range(config.n_heads)] + ([] if config.attn_only else [f"L{l}MLP"])
    parts.append(jnp.broadcast_to(_bias(model, layer), embed.shape)[..., None, :, :])
    labels.append("bias")
    return jnp.concatenate(parts, axis=-3), labels


def _bias(model, layer: int) -> Float[Array, " d_model"]:
    """What the output biases of layers `[0, layer)` add to every position."""
    bias = model.blocks.attn.b_O[:layer].sum(0)
    if not model.config.attn_only:
        bias = bias + model.blocks.mlp.b_out[:layer].sum(0)
    return bias


def _captured(acts: Activations, name: str, layer: int | None = None) -> Array:
    """`acts[name]` with an error that says which function needed it."""
    if name not in acts:
        captured = ", ".join(acts.names()) or "nothing"
        raise KeyError(f"site {name!r} is needed but was not captured (captured: {captured}); "
                       f"capture toymi.dissect.residual.decomposition_sites(config) or ACCUMULATED_SITES")
    return acts[name] if layer is None else acts[name, layer]
