"""Reading residual-stream stacks with the unembedding: the logit lens and direct logit attribution (DLA).

The final normalisation is not linear, so a component's "contribution to the logits" needs a convention. We use
TransformerLens's: freeze the final normaliser's scale at the value the real forward pass computed (the
`ln_final_scale` site), which makes the read-out linear. Each stacked vector is centred (LayerNorm only), divided by
that cached scale and multiplied by the norm weight; the norm bias and `b_U` belong to no component and are returned
separately by `logit_offset`. Then

    direct_logit_attribution(model, stack, acts).sum(component) + logit_offset(model) == logits

exactly when `stack` is `decompose_resid`'s, and the last entry of `logit_lens` is the model's logits.

A `direction` replaces the full vocabulary with one read-out, e.g. `logit_diff_directions(model, correct,
incorrect)` for the logit difference between two answers. Its shape says what it varies over, and must say it
exactly: `[d_model]` for one direction everywhere; `[*batch, pos, d_model]` for one per example and position, with
the stack's batch and position sizes; `[*batch, 1, d_model]` for one per example, the same at every position
(`per_example(directions)`). A `[batch, d_model]` direction is refused rather than read as `[pos, d_model]`, which
gives silently wrong attributions whenever the batch size equals the number of positions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from toymi.dissect.residual import _captured, accumulated_resid

Direction = Float[Array, " d_model"] | Float[Array, "*batch pos_or_1 d_model"] | None


def final_scale(model, acts) -> Float[Array, "*batch pos"] | None:
    """The final normaliser's cached scale (`ln_final_scale`), or None for a model without normalisation."""
    return _captured(acts, "ln_final_scale") if model.config.has_norm else None


def apply_final_norm(
    model, stack: Float[Array, "*batch component pos d_model"], scale: Float[Array, "*batch pos"] | None,
    with_bias: bool = False,
) -> Float[Array, "*batch component pos d_model"]:
    """The final normalisation with its scale frozen at `scale`: linear in `stack` unless `with_bias`.

    Centres each vector (LayerNorm), divides by the cached scale and applies the norm's weight (and, with
    `with_bias`, its bias). Identity for a model without normalisation.
    """
    norm = model.ln_final
    if norm is None:
        return stack
    if scale is None:
        raise ValueError("this model normalises before the unembedding: pass its cached ln_final_scale")
    if norm.b is not None:  # LayerNorm centres; RMSNorm does not
        stack = stack - stack.mean(-1, keepdims=True)
    out = stack / scale[..., None, :, None] * norm.w
    return out + norm.b if with_bias and norm.b is not None else out


def logit_offset(model) -> Float[Array, " d_vocab_out"]:
    """What every position's logits get regardless of the residual: `b_U`, plus the final LayerNorm bias read by
    `W_U`. DLA leaves this out; add it to a DLA sum to recover the logits."""
    offset = model.b_U
    if model.ln_final is not None and model.ln_final.b is not None:
        offset = offset + model.ln_final.b @ model.W_U
    return offset


def per_example(directions: Float[Array, "*batch d_model"]) -> Float[Array, "*batch 1 d_model"]:
    """One direction per example (e.g. `logit_diff_directions` of `[batch]` answers), shared by every position."""
    return jnp.asarray(directions)[..., None, :]


def checked_direction(direction, batch_shape: tuple[int, ...], n_pos: int, d_model: int) -> Array:
    """`direction` if its shape is `[d_model]`, `[*batch, pos, d_model]` or `[*batch, 1, d_model]` for these sizes;
    anything else (notably `[batch, d_model]`, which would be read as one direction per position) is a ValueError."""
    direction = jnp.asarray(direction)
    if direction.shape[-1:] != (d_model,):
        raise ValueError(f"direction must end in d_model={d_model}, got shape {direction.shape}")
    if direction.ndim == 1 or direction.shape[:-1] in (batch_shape + (n_pos,), batch_shape + (1,)):
        return direction
    raise ValueError(
        f"direction of shape {direction.shape} is ambiguous for activations of batch shape {batch_shape} and "
        f"{n_pos} positions: pass [d_model], [*batch, pos, d_model] = {batch_shape + (n_pos, d_model)}, or one per "
        f"example as [*batch, 1, d_model] (per_example(directions) turns [batch, d_model] into that)")


def read_out(
    model, stack: Float[Array, "*batch component pos d_model"], scale: Float[Array, "*batch pos"] | None,
    direction: Direction = None, normalised: bool = False,
) -> Float[Array, "*batch component pos"] | Float[Array, "*batch component pos d_vocab_out"]:
    """Each stacked vector's direct effect on the logits (no bias): through the final norm with the cached scale
    (skipped when the stack is already `normalised`), then `W_U` (every logit) or `direction` (one number)."""
    normed = stack if normalised else apply_final_norm(model, stack, scale)
    if direction is None:
        return normed @ model.W_U
    direction = checked_direction(direction, stack.shape[:-3], stack.shape[-2], model.config.d_model)
    if direction.ndim == 1:
        return normed @ direction
    return (normed * direction[..., None, :, :]).sum(-1)  # direction [*batch, pos or 1, d_model]


def direct_logit_attribution(model, stack: Float[Array, "*batch component pos d_model"], acts,
                             direction: Direction = None):
    """Direct logit attribution of every component in `stack` (from `decompose_resid`), in one einsum.

    **Arguments:**

    - `model`: the `Transformer` that produced `acts`.
    - `stack`: `[*batch, component, pos, d_model]`, e.g. `decompose_resid(model, acts)[0]`.
    - `acts`: activations with `ln_final_scale` captured (for models with normalisation).
    - `direction`: None for every logit; a `[d_model]` vector, `[*batch, pos, d_model]` vectors (e.g.
      `logit_diff_directions` of `[batch, pos]` answers) or `[*batch, 1, d_model]` ones (`per_example(...)`) for one
      read-out per position (see the module docstring: other shapes are refused as ambiguous).

    **Returns:** `[*batch, component, pos, d_vocab_out]`, or `[*batch, component, pos]` with a direction. Summed
    over components and added to `logit_offset(model)` (read along the direction) it gives the logits.
    """
    return read_out(model, stack, final_scale(model, acts), direction)


def logit_lens(model, acts, direction: Direction = None, recompute_norm: bool = False):
    """The logit lens over every layer at once: each layer's incoming residual read as if it were the last.

    By default the final norm uses the scale cached on the real forward pass (the `ln_final_scale` site), the
    convention of direct logit attribution: every entry is then a linear read-out on one common scale, and the last
    entry equals the model's logits. With `recompute_norm`, each entry is normalised with its own statistics, as if
    the model stopped there (nostalgebraist's logit lens; TransformerLens 3.9's `accumulated_resid(apply_ln=True)`):
    better calibrated probabilities for early layers, whose residual is smaller. The last entry is the same either way.

    **Arguments:**

    - `model`, `acts`: activations with `resid_pre`, `resid_post` (and `ln_final_scale` with normalisation).
    - `direction`: None for full logits (with `logit_offset` added, so the last entry is the logits); a direction,
      as for `direct_logit_attribution`, for the residual's read-out along it without any offset (as
      TransformerLens's `residual_stack_to_logit_diff`).
    - `recompute_norm`: normalise each entry with its own statistics instead of the cached final scale.

    **Returns:** `[*batch, n_layers + 1, pos, d_vocab_out]` (or `[*batch, n_layers + 1, pos]` with a direction):
    entry `l` reads `resid_pre` of layer `l`, the last entry the final residual.
    """
    stack = accumulated_resid(acts)
    if recompute_norm and model.ln_final is not None:
        lens = read_out(model, _normalised_by_own_scale(model, stack), None, direction, normalised=True)
    else:
        lens = read_out(model, stack, final_scale(model, acts), direction)
    return lens + logit_offset(model) if direction is None else lens


def _normalised_by_own_scale(model, stack: Float[Array, "*b n pos d_model"]) -> Float[Array, "*b n pos d_model"]:
    """The final norm applied to every vector with its own statistics, without the norm's bias (an offset)."""
    norm = model.ln_final
    if norm.b is not None:
        stack = stack - stack.mean(-1, keepdims=True)
    return stack / jnp.sqrt((stack * stack).mean(-1, keepdims=True) + norm.eps) * norm.w


def neuron_direct_logit_attribution(
    model, acts, direction: Direction = None,
) -> Float[Array, "*batch layer pos d_mlp"] | Float[Array, "*batch layer pos d_mlp d_vocab_out"]:
    """Direct logit attribution of every MLP neuron: `mlp_post * (W_out row, through the final norm) @ W_U`.

    Summed over neurons it equals the `L{l}MLP` component's attribution (the MLP output without its bias).

    **Arguments:**

    - `model`, `acts`: activations with `mlp_post` (and `ln_final_scale` with normalisation) captured.
    - `direction`: as for `direct_logit_attribution`; None gives every logit (`d_mlp * d_vocab_out` per position:
      pass a direction for anything but small models).

    **Returns:** `[*batch, layer, pos, d_mlp]` with a direction, `[*batch, layer, pos, d_mlp, d_vocab_out]` without.
    """
    if model.config.attn_only:
        raise ValueError("this model is attention-only (d_mlp = 0): it has no neurons")
    post = _captured(acts, "mlp_post")  # [*batch, layer, pos, d_mlp]
    w_out = model.blocks.mlp.W_out  # [layer, d_mlp, d_model]
    norm = model.ln_final
    if norm is not None and norm.b is not None:
        w_out = w_out - w_out.mean(-1, keepdims=True)  # centring is linear: centre each neuron's output vector
    if norm is not None:
        w_out = w_out * norm.w
    scale = final_scale(model, acts)
    inv_scale = 1.0 if scale is None else 1.0 / scale[..., None, :, None]  # [*batch, 1, pos, 1]
    if direction is None:
        per_neuron = w_out @ model.W_U  # [layer, d_mlp, d_vocab_out]
        return (post * inv_scale)[..., None] * per_neuron[:, None, :, :]
    direction = checked_direction(direction, post.shape[:-3], post.shape[-2], model.config.d_model)
    if direction.ndim == 1:
        per_neuron = (w_out @ direction)[:, None, :]  # [layer, 1, d_mlp]
    else:  # [*batch, pos, d_model] -> [*batch, layer, pos, d_mlp]
        per_neuron = jnp.einsum("lnd,...pd->...lpn", w_out, direction)
    return post * inv_scale * per_neuron


def unembed_directions(model, tokens: ArrayLike) -> Float[Array, "*shape d_model"]:
    """`W_U`'s column for each output token in `tokens`: reading the residual along it gives that token's logit."""
    return _columns(model, tokens, "tokens")


def logit_diff_directions(model, correct: ArrayLike, incorrect: ArrayLike) -> Float[Array, "*shape d_model"]:
    """`W_U[:, correct] - W_U[:, incorrect]`: reading the residual along it gives the logit difference between the
    correct and the incorrect answer. The result has the answers' shape plus `d_model`: `[batch, pos]` answers give
    per-example, per-position directions; `[batch]` answers (as `LogitDiff` takes) give `[batch, d_model]`, which
    DLA and the logit lens take only through `per_example(...)`."""
    return _columns(model, correct, "correct") - _columns(model, incorrect, "incorrect")


def _columns(model, tokens: ArrayLike, what: str) -> Array:
    tokens = jnp.asarray(tokens)
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"{what} must be integer token ids, got dtype {tokens.dtype}")
    n = model.config.d_vocab_out
    if not isinstance(tokens, jax.core.Tracer):  # traced ids cannot be checked on the host
        concrete = np.asarray(tokens)
        if ((concrete < 0) | (concrete >= n)).any():
            raise ValueError(f"{what} token ids must be in [0, {n}), got {concrete.min()}..{concrete.max()}")
    return model.W_U.T[tokens]
