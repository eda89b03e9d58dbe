"""Train SPD for many members (seeds × hyperparameter settings) of one target model as ONE compiled program: each
member's whole run is a `lax.scan`, and the members are an `eqx.filter_vmap` of it (as the SAEs' `train_saes`).

A member's seed picks its initialisation, its data stream and its masks; its `SPDHyper` row its importance
coefficient and p schedule. Everything else (shapes, step count, the other coefficients, the optimiser: Adam from
`toymi.train.optimizer.adamw` without weight decay, cosine by default) is the shared `SPDConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.decompose.parameters.components import INITS
from toymi.decompose.parameters.importance import LOWER_IMPORTANCE, init_importance
from toymi.decompose.parameters.pgd import PGD_INITS, PGDSettings
from toymi.decompose.parameters.losses import (
    OUTPUT_LOSSES, SPDParams, annealed_p, faithfulness, merge_tied_updates, output_distance, spd_losses, tie,
)
from toymi.decompose.parameters.targets import Target, model_input_sampler, model_targets
from toymi.errors import ConfigError
from toymi.train.optimizer import SCHEDULES, Schedule, adamw
from toymi.train.update import update
from toymi.validate import Config, boolean, integer, number, one_of, positive_number, setting

LOSS_TERMS = ("faithfulness", "recon", "recon_layerwise", "importance")  # and "recon_pgd" when on
TIES = ("updates", "gradients", "none")  # `SPDConfig.tie`


@dataclasses.dataclass(frozen=True)
class SPDConfig(Config):
    """What every member shares.

    - `C`: subcomponents per decomposed matrix.
    - `steps`, `batch_size`, `lr`, `schedule`, `warmup_steps`: Adam (no weight decay) with this schedule.
    - `targets`: names of the matrices to decompose (`targets.model_targets`; None: all).
    - `faithfulness_coef`, `recon_coef`, `layerwise_coef`: the other losses' weights.
    - `p_anneal_start`: training fraction where p starts moving from a member's `p_start` to its `p_end`.
    - `faithfulness_warmup_steps`, `faithfulness_warmup_lr`, `faithfulness_warmup_weight_decay`: AdamW on
      faithfulness alone, over the subcomponents only, before training, so they start as a decomposition of the
      weights (the reference code's `run_faithfulness_warmup`: weight decay 0 by default, 0.1 in its TMS and
      resid_mlp1 configs; 0 steps turns it off).
    - `hidden`: width of each causal-importance MLP.
    - `tie`: how the subcomponents of matrices the model itself ties are tied (TMS: `W_out`'s are `W_in`'s
      transposed, `targets.Target.tied`, as the reference code). `"updates"`: as the reference does it (each
      use's factors get their own gradient and Adam state, and the shared factors move by the sum of the two
      updates, `losses.merge_tied_updates`); `"gradients"`: one set of factors, one Adam state, the two uses'
      gradients summed (`losses.tie`); `"none"`: the two uses decomposed independently.
    - `init`: how the subcomponents start: `"gaussian"` (the reference code now: `V ~ N(0, 1/d_in)`, `U ~ N(0, 1/C)`)
      or `"overlapping"` (the paper's code: unit-norm factors scaled by their overlap with the weights).
    - `lower_importance`: the masks' importance from its pre-activation: `"hard_sigmoid"` (the reference code now:
      clipped forward, leaky gradient) or `"leaky_relu"` (the paper's code: leaky below 0 forward too).
    - `output_loss`, `output_positions`: how the masked model's output is compared with the target's
      (`losses.output_distance`: `"auto"` is KL for a transformer, MSE otherwise, a guess from the model alone;
      `task_output(task, kind)` gives the task's own; positions: a transformer's outputs compared, None for all).
    - The 2026 version's options (`pgd.py`), off by default: `pgd_coef` weighs the adversarial reconstruction
      (`pgd_steps` signed-gradient steps of `pgd_step_size` from `pgd_init`, sources per example or `pgd_shared`
      across the batch); `frequency_coef` (β) and `frequency_p` (p₂) add the frequency-minimality term.
    """

    title: ClassVar[str] = "SPD config"
    section: ClassVar[str] = "SPD config"

    C: int = setting(check=integer(1))
    steps: int = setting(1000, integer(1))
    batch_size: int = setting(1024, integer(1))
    lr: float = setting(1e-3, positive_number)
    schedule: Schedule = setting("cosine", one_of(SCHEDULES))
    warmup_steps: int = setting(0, integer(0))
    targets: tuple[str, ...] | None = None
    faithfulness_coef: float = setting(1.0, number(0))
    recon_coef: float = setting(1.0, number(0))
    layerwise_coef: float = setting(1.0, number(0))
    p_anneal_start: float = setting(1.0, number(0, 1))
    faithfulness_warmup_steps: int = setting(0, integer(0))
    faithfulness_warmup_lr: float = setting(1e-2, positive_number)
    faithfulness_warmup_weight_decay: float = setting(0.0, number(0))
    hidden: int = setting(16, integer(1))
    tie: str = setting("updates", one_of(TIES))
    init: str = setting("gaussian", one_of(tuple(INITS)))
    lower_importance: str = setting("hard_sigmoid", one_of(tuple(LOWER_IMPORTANCE)))
    output_loss: str = setting("auto", one_of(OUTPUT_LOSSES))
    output_positions: tuple[int, ...] | None = None
    pgd_coef: float = setting(0.0, number(0))
    pgd_steps: int = setting(1, integer(0))
    pgd_step_size: float = setting(0.1, positive_number)
    pgd_init: str = setting("random", one_of(PGD_INITS))
    pgd_shared: bool = setting(False, boolean)
    frequency_coef: float = setting(0.0, number(0))
    frequency_p: float = setting(2.0, positive_number)

    def pgd(self) -> PGDSettings | None:
        """The adversarial reconstruction's settings, or None when it is off (`pgd_coef` 0)."""
        if not self.pgd_coef:
            return None
        return PGDSettings(self.pgd_steps, self.pgd_step_size, self.pgd_init, self.pgd_shared)

    def optimizer(self) -> optax.GradientTransformation:
        return adamw(steps=self.steps, lr=self.lr, warmup_steps=self.warmup_steps, schedule=self.schedule)


class SPDHyper(eqx.Module):
    """Per-member settings (leaves get a leading member axis: `stack_spd_hypers`)."""

    importance_coef: Float[Array, ""]
    p_start: Float[Array, ""]
    p_end: Float[Array, ""]


def spd_hyper(importance_coef: float, p: float = 1.0, p_end: float | None = None) -> SPDHyper:
    """One member's settings; p constant unless `p_end` is given (annealed from `SPDConfig.p_anneal_start`)."""
    return SPDHyper(jnp.asarray(importance_coef, jnp.float32), jnp.asarray(p, jnp.float32),
                    jnp.asarray(p if p_end is None else p_end, jnp.float32))


def stack_spd_hypers(hypers: Sequence[SPDHyper]) -> SPDHyper:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *hypers)


class TrainedSPD(eqx.Module):
    """The result of one vmapped run: every member's `SPDParams` (leading member axis) and loss curves."""

    params: SPDParams
    losses: dict[str, Float[Array, "member step"]]
    target_names: tuple[str, ...] = eqx.field(static=True)

    @property
    def n_members(self) -> int:
        return self.losses["total"].shape[0]

    def member(self, i: int) -> SPDParams:
        """Member `i`'s parameters, unstacked."""
        return jax.tree.map(lambda leaf: leaf[i], self.params)


def init_params(model: eqx.Module, targets: Sequence[Target], cfg: SPDConfig, key: PRNGKeyArray) -> SPDParams:
    keys = jax.random.split(key, 2 * len(targets))
    comps = tuple(INITS[cfg.init](t.get(model), cfg.C, k) for t, k in zip(targets, keys[::2]))
    return SPDParams(comps, tuple(init_importance(cfg.C, k, cfg.hidden, cfg.lower_importance) for k in keys[1::2]))


def _tying(targets: Sequence[Target], tie_mode: str) -> tuple[list[Target], list[Target], Callable]:
    """`(targets, loss_targets, after_step)`: the targets as tied, those the losses see (untied for "updates": each
    use differentiates its own arrays), and what follows each optimiser step (`(old, new) -> new`)."""
    if tie_mode == "none":
        targets = [dataclasses.replace(t, tied=None) for t in targets]
    if tie_mode == "updates":
        return list(targets), [dataclasses.replace(t, tied=None) for t in targets], \
            lambda old, new: merge_tied_updates(old, new, targets)
    return list(targets), list(targets), lambda old, new: new


def _faithfulness_warmup(params: SPDParams, model, targets, cfg: SPDConfig) -> SPDParams:
    if not cfg.faithfulness_warmup_steps:
        return params
    targets, loss_targets, after_step = _tying(targets, cfg.tie)
    params = tie(params, targets)
    # the subcomponents alone: decoupled weight decay would otherwise shrink the importance MLPs too
    opt = optax.adamw(cfg.faithfulness_warmup_lr, weight_decay=cfg.faithfulness_warmup_weight_decay)

    def loss(comps, _):
        return faithfulness(tie(SPDParams(comps, params.importance), loss_targets), model, targets), None

    def body(carry, _):
        comps, state = update(loss, opt, *carry, None)[:2]
        return (after_step(SPDParams(carry[0], params.importance), SPDParams(comps, params.importance)).components,
                state), None

    (comps, _), _ = jax.lax.scan(body, (params.components, opt.init(params.components)),
                                 length=cfg.faithfulness_warmup_steps)
    return tie(SPDParams(comps, params.importance), targets)


class SPDParts(eqx.Module):
    """One member's run in three pieces, each pure (vmap them over members): `start(seed, h) -> carry` (the
    initialisation and the faithfulness warmup), `steps(carry, h, step_indices) -> (carry, terms)` (training steps
    `step_indices`, in order, as one `lax.scan`; `terms[name]` per step) and `finish(carry) -> SPDParams`.
    `make_spd_trainer` chains them into one program; `resumable.train_spd_in_pieces` runs the steps piece by piece."""

    start: Callable
    steps: Callable
    finish: Callable


def spd_parts(model: eqx.Module, sample: Callable[[PRNGKeyArray, int], Array], cfg: SPDConfig
              ) -> tuple[SPDParts, list[Target]]:
    """`(parts, targets)`: a member's run (`SPDParts`) on `model`, inputs from `sample(key, n)` (`[n, d]` model
    inputs, or a task's `sample`, whose batches' `inputs` are used)."""
    sample = model_input_sampler(sample)
    targets, loss_targets, after_step = _tying(model_targets(model, cfg.targets), cfg.tie)
    optimizer = cfg.optimizer()
    distance = output_distance(model, cfg.output_loss, cfg.output_positions)

    def total(params, x, key, h, p):
        terms = spd_losses(params, model, loss_targets, x, key, p, distance, cfg.pgd(),
                           (cfg.frequency_coef, cfg.frequency_p))
        loss = (cfg.faithfulness_coef * terms["faithfulness"] + cfg.recon_coef * terms["recon"]
                + cfg.layerwise_coef * terms["recon_layerwise"] + h.importance_coef * terms["importance"])
        if "recon_pgd" in terms:
            loss = loss + cfg.pgd_coef * terms["recon_pgd"]
        return loss, terms | {"total": loss}

    def start(seed, h):
        init_key, key = jax.random.split(jax.random.PRNGKey(seed))
        params = tie(init_params(model, targets, cfg, init_key), targets)
        params = _faithfulness_warmup(params, model, targets, cfg)
        return params, optimizer.init(params), key

    def steps(carry, h, step_indices):
        def body(carry, step):
            old, opt_state, key = carry
            key, k_data, k_mask = jax.random.split(key, 3)
            p = annealed_p(step / cfg.steps, h.p_start, h.p_end, cfg.p_anneal_start)
            params, opt_state, _, terms = update(lambda q, x: total(q, x, k_mask, h, p), optimizer, old, opt_state,
                                                 sample(k_data, cfg.batch_size))
            return (after_step(old, params), opt_state, key), terms

        return jax.lax.scan(body, carry, step_indices)

    return SPDParts(start, steps, lambda carry: tie(carry[0], targets)), targets


def make_spd_trainer(model: eqx.Module, sample: Callable[[PRNGKeyArray, int], Array], cfg: SPDConfig):
    """The compiled program: `(seeds [member], hypers) -> (params, losses)`, every member's whole run (`spd_parts`
    chained). The same trainer called again with as many members reuses its compiled program."""
    parts, targets = spd_parts(model, sample, cfg)

    def one(seed, h):
        carry, terms = parts.steps(parts.start(seed, h), h, jnp.arange(cfg.steps))
        return parts.finish(carry), terms

    return eqx.filter_jit(eqx.filter_vmap(one)), targets


def task_output(task, kind: str) -> dict:
    """`SPDConfig`'s `output_loss` and `output_positions` for a `kind` model trained on `task`: the task's own
    comparison (`Task.output_comparison`), so a BCE-trained model's logits are compared as sigmoids, not by MSE."""
    loss, positions = task.output_comparison(kind)
    return {"output_loss": loss, "output_positions": positions}


def check_members(seeds, hypers: SPDHyper) -> Int[Array, " member"]:
    """`seeds` as an int32 `[member]` array, or a clear error unless every `hypers` leaf has that member axis."""
    seeds = jnp.asarray(seeds, jnp.int32)
    if seeds.ndim != 1 or any(leaf.shape[:1] != seeds.shape for leaf in jax.tree.leaves(hypers)):
        raise ConfigError(f"seeds must be [member] and every SPDHyper leaf [member]; got seeds {seeds.shape} and "
                          f"{[leaf.shape for leaf in jax.tree.leaves(hypers)]}")
    return seeds


def train_spd(model: eqx.Module, sample: Callable[[PRNGKeyArray, int], Array], cfg: SPDConfig, hypers: SPDHyper,
              seeds: Int[Array, " member"]) -> TrainedSPD:
    """SPD on `model` for every member (`seeds[i]`, `hypers` row i) as one vmapped, compiled run.

    **Arguments:**

    - `model`: the trained target model (TMS or residual MLP); it stays fixed.
    - `sample`: `sample(key, n) -> [n, d_input]`, fresh inputs from the model's data distribution (or the task's
      own `task.sample`, whose batches' `inputs` are used).
    - `cfg`: what the members share; `hypers`: per-member settings (`stack_spd_hypers`); `seeds`: `[member]`.

    **Returns:** `TrainedSPD`.
    """
    seeds = check_members(seeds, hypers)
    trainer, targets = make_spd_trainer(model, sample, cfg)
    params, terms = trainer(seeds, hypers)
    return TrainedSPD(params, terms, tuple(t.name for t in targets))
