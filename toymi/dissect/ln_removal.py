"""Remove a transformer's normalisation by gradual fine-tuning (Heimersheim 2024, "You can remove GPT2's LayerNorm
by fine-tuning"), ending with a `normalization = "none"` model.

A LayerNorm divides by each token's own standard deviation: the only data-dependent non-linearity on the residual
stream's way into a layer, and the reason direct logit attribution and linear decompositions are approximate.
Replace one norm's scale by a constant (its average over data), fine-tune with the task's loss so the model adapts,
then the next, until none is left. A norm with a fixed scale is linear (centre, divide by a constant, `w`, `b`), so
the end result folds into the weights of a model without normalisation.

`fixed_norms(model, scales, removed)` is the model during the procedure: the `Transformer` with fixed interventions
(`model.with_interventions`, one `FixedScale` per norm) that set each removed norm's scale site to a constant
(`toymi.model.transformer` passes the scale through its site before dividing, so the patch flows downstream),
usable anywhere a model is (`task.loss`, `evaluate`, `run` with capture and interventions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from toymi.dissect.layernorm import center_writing_weights, fold_ln
from toymi.host import committed
from toymi.model.hooked import Intervened
from toymi.model.transformer import Transformer
from toymi.tasks import Task
from toymi.train.state import TrainState, init_optimizer_state
from toymi.train.step import evaluate, train_step

NormSite = tuple[str, int | None]  # a norm by its scale site: ("ln1_scale", 0), ..., ("ln_final_scale", None)


def norm_sites(config) -> tuple[NormSite, ...]:
    """Every normalisation of a transformer with this config, in forward order, named by its scale site."""
    if not config.has_norm:
        return ()
    per_layer = ("ln1_scale",) if config.attn_only else ("ln1_scale", "ln2_scale")
    return (*((site, layer) for layer in range(config.n_layers) for site in per_layer), ("ln_final_scale", None))


def default_order(config) -> tuple[NormSite, ...]:
    """The removal schedule used unless one is given: the MLP norms (layer order), then the attention norms, then
    the final norm, as Heimersheim removes one kind of LayerNorm at a time with fine-tuning in between."""
    sites = norm_sites(config)
    return (*(s for s in sites if s[0] == "ln2_scale"), *(s for s in sites if s[0] == "ln1_scale"),
            ("ln_final_scale", None))


class FixedScale(eqx.Module):
    """An intervention: the scale site `site` (at `layer`) set to the constant `scale` wherever `removed` is True
    (a traced flag, so one compile serves every stage of a removal schedule)."""

    site: str = eqx.field(static=True)
    layer: int | None = eqx.field(static=True)
    scale: Float[Array, ""]
    removed: Bool[Array, ""]

    def apply(self, site: str, layer: int | None, x: Array, axes: tuple[str, ...], n_layers: int) -> Array:
        del axes, n_layers
        if site != self.site or (self.layer is not None and layer != self.layer):
            return x
        return jnp.where(self.removed, jnp.asarray(self.scale, x.dtype), x)


def fixed_norms(model: Transformer, scales: Float[Array, " norm"], removed: Bool[Array, " norm"]) -> Intervened:
    """`model` whose `removed` norms divide by the constant in `scales` instead of the token's own scale:
    `model.with_interventions` of one `FixedScale` per norm (`[norm]` in `norm_sites(model.config)` order). Its
    `model` is the transformer (its parameters are what fine-tuning changes); `norm_scales` reads the two back."""
    return model.with_interventions([FixedScale(site, layer, scales[i], removed[i])
                                     for i, (site, layer) in enumerate(norm_sites(model.config))])


def norm_scales(fixed: Intervened) -> tuple[Float[Array, " norm"], Bool[Array, " norm"]]:
    """`(scales, removed)` of a `fixed_norms` model, `[norm]` in `norm_sites` order."""
    return (jnp.stack([i.scale for i in fixed.interventions]), jnp.stack([i.removed for i in fixed.interventions]))


def with_fixed_norms(model: Transformer) -> Intervened:
    """`model` as a `fixed_norms` model with no norm removed yet (outputs identical)."""
    if not isinstance(model, Transformer):
        raise TypeError(f"LayerNorm removal needs a toymi Transformer; got {type(model).__name__}")
    sites = norm_sites(model.config)
    if not sites:
        raise ValueError("this model has no normalisation (normalization = 'none'): there is nothing to remove")
    return fixed_norms(model, jnp.ones(len(sites)), jnp.zeros(len(sites), bool))


@eqx.filter_jit
def measure_scales(model: Intervened, tokens: Int[Array, "batch pos"]) -> Float[Array, " norm"]:
    """Each norm's scale averaged over every token of `tokens` (the constant that replaces it), `[norm]`."""
    sites = norm_sites(model.config)
    _, acts = model.run(tokens, capture=sorted({site for site, _ in sites}))
    return jnp.stack([(acts[site] if layer is None else acts[site, layer]).mean() for site, layer in sites])


@eqx.filter_jit
def _measure(model: Intervened, task: Task, keys: PRNGKeyArray) -> Float[Array, " norm"]:
    """`measure_scales` on one training batch per key, sampled inside the compiled call."""
    # the tokens a transformer reads (an AND-gate task makes them of its features): [batches, batch, pos]
    tokens = jax.vmap(lambda k: task.model_inputs(task.train_batch(k), "transformer"))(keys)
    return measure_scales(model, tokens.reshape(-1, tokens.shape[-1]))


def fold_fixed_norms(model: Intervened) -> Transformer:
    """The `normalization = "none"` transformer computing what `model` computes once every norm is fixed.

    Fold each norm's weight and bias into its readers (`fold_ln`), centre the residual stream's writers (LayerNorm:
    exact, every reader centres, and afterwards centring is the identity), then divide each reader's weights by its
    norm's constant scale. Logits equal `model`'s up to float rounding.
    """
    sites = norm_sites(model.config)
    scales, removed = norm_scales(model)
    live = [f"{site}[{layer}]" if layer is not None else site
            for (site, layer), gone in zip(sites, np.asarray(removed)) if not gone]
    if live:
        raise ValueError(f"every norm must be removed before folding; still data-dependent: {', '.join(live)}")
    inner = fold_ln(model.model)
    if inner.config.normalization == "layernorm":
        inner = center_writing_weights(inner)
    scale = dict(zip(sites, scales))
    layers = range(inner.config.n_layers)
    s1 = jnp.stack([scale["ln1_scale", layer] for layer in layers])  # [layer]
    attn = inner.blocks.attn
    attn = eqx.tree_at(lambda a: (a.W_Q, a.W_K, a.W_V), attn,
                       tuple(W / s1[:, None, None, None] for W in (attn.W_Q, attn.W_K, attn.W_V)))
    mlp = inner.blocks.mlp
    if mlp is not None:
        s2 = jnp.stack([scale["ln2_scale", layer] for layer in layers])
        mlp = eqx.tree_at(lambda m: m.W_in, mlp, mlp.W_in / s2[:, None, None])
    config = dataclasses.replace(inner.config, normalization="none")
    plain = eqx.filter_eval_shape(Transformer, config, jax.random.PRNGKey(0))  # structure only, every leaf replaced
    parts = [(lambda m: m.W_E, inner.W_E), (lambda m: m.W_U, inner.W_U / scale["ln_final_scale", None]),
             (lambda m: m.b_U, inner.b_U), (lambda m: m.blocks.attn, attn)]
    if inner.W_pos is not None:
        parts.append((lambda m: m.W_pos, inner.W_pos))
    if mlp is not None:
        parts.append((lambda m: m.blocks.mlp, mlp))
    for where, value in parts:
        plain = eqx.tree_at(where, plain, value)
    return plain


@eqx.filter_jit
def _finetune(state: TrainState, task: Task, scales: Array, removed: Array,
              optimizer: optax.GradientTransformation, n_steps: int) -> tuple[TrainState, Float[Array, " n_steps"]]:
    """`n_steps` optimiser steps of the transformer inside `fixed_norms(., scales, removed)` on the task's loss; the
    scales are arguments, not parameters, so they stay fixed. One compile serves every stage of the same length."""

    def loss(model, task, batch):
        return task.loss(fixed_norms(model, scales, removed), batch)

    return jax.lax.scan(lambda carry, _: train_step(carry, task, optimizer, loss), state, length=n_steps)


def _finetune_chunked(state: TrainState, task: Task, scales: Array, removed: Array,
                      optimizer: optax.GradientTransformation, steps: int, chunk: int) -> tuple[TrainState, np.ndarray]:
    """`_finetune` for `steps` steps as calls of `chunk` steps (and one of the remainder): the scan's length is part
    of the compiled program, so a stage as long as the others reuses theirs. Same steps, same keys, same result."""
    losses = []
    for n in [chunk] * (steps // chunk) + ([steps % chunk] if steps % chunk else []):
        # one placement for every call: each call's state is the last one's output (host.committed)
        state, scales, removed = committed((state, scales, removed), state.model)
        state, chunk_losses = _finetune(state, task, scales, removed, optimizer, n)
        losses.append(np.asarray(chunk_losses))
    return state, np.concatenate(losses)  # steps >= 1: both callers check it


@dataclasses.dataclass(frozen=True)
class LNRemoval:
    """What `remove_layernorm` (or the control, `finetune_with_norms`) returns.

    - `model`: the `normalization = "none"` transformer (the control: the fine-tuned model, norms kept).
    - `order`: the norms in the order removed; `scales`: the constant each got, `[norm]` in that order.
    - `stages`: one row per evaluation, `{"stage": str, "step": int, "{set}_{metric}": float, ...}`:
      `before`, then per norm `removed <norm>` (right after fixing it) and `tuned <norm>` (after fine-tuning), then
      `after` (the folded model, or the control's end).
    - `train_loss`: `[step]` training loss of every fine-tuning step.
    """

    model: Transformer
    order: tuple[NormSite, ...]
    scales: np.ndarray
    stages: list[dict]
    train_loss: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """One column of `stages` (e.g. `"test_loss"`) as an array, in stage order."""
        return np.array([row[name] for row in self.stages])


def remove_layernorm(
    model: Transformer, task: Task, optimizer: optax.GradientTransformation, *, key: PRNGKeyArray,
    steps_per_removal: int, final_steps: int = 0, order: Sequence[NormSite] | None = None, measure_batches: int = 4,
) -> LNRemoval:
    """Fix every norm's scale to its data average, one at a time, fine-tuning after each; fold the result.

    **Arguments:**

    - `model`: a trained `Transformer` with LayerNorm or RMSNorm.
    - `task`: the task it was trained on; fine-tuning minimises `task.loss` on `task.train_batch` samples, and every
      stage is scored with `toymi.train.evaluate` on its eval sets.
    - `optimizer`: an optax optimiser (e.g. `toymi.experiment.make_optimizer(run.spec.train)` or a smaller learning
      rate); its state carries over from one stage to the next.
    - `key`: drives the training batches and the batches the scales are measured on.
    - `steps_per_removal`: fine-tuning steps after each removal; `final_steps`: more after the last.
    - `order`: the norms (`norm_sites(config)` entries) in removal order; default `default_order(config)`.
    - `measure_batches`: training batches each scale is averaged over, measured just before its removal (with the
      earlier removals in effect).

    **Returns:** an `LNRemoval`; its `model` has no normalisation.
    """
    fixed = with_fixed_norms(model)
    sites = norm_sites(model.config)
    order = default_order(model.config) if order is None else tuple(order)
    if sorted(order, key=str) != sorted(sites, key=str):
        raise ValueError(f"order must name every norm exactly once: {sites}; got {order}")
    if steps_per_removal < 1 or final_steps < 0:
        raise ValueError(f"steps_per_removal must be >= 1 and final_steps >= 0; got {steps_per_removal}, {final_steps}")

    state = _start(fixed.model, optimizer, key)
    stages, losses, chosen = [_row("before", 0, fixed, task)], [], []
    scales, removed = norm_scales(fixed)
    for site in order:
        index = sites.index(site)
        state, measure_key = _split(state)
        value = _measure(fixed_norms(state.model, scales, removed), task,
                         jax.random.split(measure_key, measure_batches))[index]
        scales, removed = scales.at[index].set(value), removed.at[index].set(True)
        chosen.append(float(value))
        name = _name(site)
        stages.append(_row(f"removed {name}", int(state.step), fixed_norms(state.model, scales, removed), task))
        n = steps_per_removal + (final_steps if site == order[-1] else 0)
        state, chunk = _finetune_chunked(state, task, scales, removed, optimizer, n, steps_per_removal)
        losses.append(chunk)
        stages.append(_row(f"tuned {name}", int(state.step), fixed_norms(state.model, scales, removed), task))
    plain = fold_fixed_norms(fixed_norms(state.model, scales, removed))
    stages.append(_row("after", int(state.step), plain, task))
    return LNRemoval(plain, order, np.array(chosen), stages, np.concatenate(losses))


def finetune_with_norms(model: Transformer, task: Task, optimizer: optax.GradientTransformation, *,
                        key: PRNGKeyArray, steps: int, chunk_steps: int | None = None) -> LNRemoval:
    """The control for `remove_layernorm`: the same kind of fine-tuning for `steps` steps with every norm kept, so a
    loss change can be told apart from what fine-tuning alone does. Stages: `before`, `after`. `chunk_steps`: run
    the steps in calls of that many (the removal's `steps_per_removal` reuses its compiled program; default one
    call)."""
    chunk_steps = steps if chunk_steps is None else chunk_steps
    if steps < 1 or chunk_steps < 1:
        raise ValueError(f"steps and chunk_steps must be >= 1; got {steps}, {chunk_steps}")
    fixed = with_fixed_norms(model)
    scales, removed = norm_scales(fixed)
    state = _start(model, optimizer, key)
    state, losses = _finetune_chunked(state, task, scales, removed, optimizer, steps, chunk_steps)
    stages = [_row("before", 0, fixed, task), _row("after", int(state.step), fixed_norms(state.model, scales, removed),
                                                   task)]
    return LNRemoval(state.model, (), np.zeros(0), stages, np.asarray(losses))


def _start(model: Transformer, optimizer: optax.GradientTransformation, key: PRNGKeyArray) -> TrainState:
    opt_state = init_optimizer_state(optimizer, model)
    return TrainState(step=jnp.asarray(0, jnp.int32), model=model, opt_state=opt_state, key=key)


def _split(state: TrainState) -> tuple[TrainState, PRNGKeyArray]:
    key, sub = jax.random.split(state.key)
    return eqx.tree_at(lambda s: s.key, state, key), sub


def _row(stage: str, step: int, model, task: Task) -> dict:
    return {"stage": stage, "step": step, **{k: float(v) for k, v in evaluate(model, task).items()}}


def _name(site: NormSite) -> str:
    return site[0] if site[1] is None else f"{site[0]}[{site[1]}]"
