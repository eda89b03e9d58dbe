"""Train many SAE configurations as one vmapped, compiled `lax.scan`, on data streamed from a `GroundTruth`.

Each member (a seed and a `Hyper`) draws its own batch on device from `truth.sample(key, batch_size)` every step, so
no activations are ever stored. The members differ only in arrays (seed, L1 coefficient, k, ...), so N members are
one `eqx.filter_vmap` of one training function: one compile, and one XLA program whose matmuls are N times wider,
which on any device costs far less than N separate runs (`benchmarks/sae_vmap_speed.py`).

Reused from the training engine: `TrainState` (step, model, opt_state, key), the optimiser factory `adamw` (from
plain values) and the one `update` step, whose auxiliary outputs carry which latents fired (AuxK's dead-latent
count) and whose projection renormalises the decoder after each step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.sae import KINDS, SAE, BatchTopKSAE, Hyper, aux_k_loss, init_sae, normalise_decoder
from toymi.errors import ConfigError
from toymi.train.optimizer import SCHEDULES, Schedule, adamw
from toymi.train.state import TrainState
from toymi.train.update import update
from toymi.validate import Config, boolean, integer, one_of, optional, positive_number, setting


@dataclasses.dataclass(frozen=True)
class SAEConfig(Config):
    """What every member of one vmapped run shares (shapes and the optimiser); per-member settings are `Hyper`s.

    - `kind`: `"relu"`, `"topk"`, `"batchtopk"` or `"jumprelu"`.
    - `n_latents`: dictionary size.
    - `steps`, `batch_size`, `lr`, `warmup_steps`, `schedule`: the optimiser (AdamW without weight decay).
    - `b_dec_init`: decoder bias at the start: `"zeros"`, or the `"mean"` / `"median"` (per coordinate) of a sample.
    - `normalise_decoder`: rescale decoder rows to unit norm after every step (Gao et al.; the default for top-k
      kinds, whose codes carry no penalty that would otherwise pin the scale).
    - `k_max`: top-k kinds: the largest member k (static, as `lax.top_k` needs it).
    - `k_aux`: top-k kinds: dead latents AuxK uses (Gao et al.: d/2); 0 turns AuxK off for every member.
    - `init_threshold`: JumpReLU's initial θ.
    """

    title: ClassVar[str] = "SAE config"
    section: ClassVar[str] = "SAE config"

    kind: str = setting(check=one_of(KINDS))
    n_latents: int = setting(check=integer(1))
    steps: int = setting(2000, integer(1))
    batch_size: int = setting(1024, integer(1))
    lr: float = setting(1e-3, positive_number)
    warmup_steps: int = setting(0, integer(0))
    schedule: Schedule = setting("constant", one_of(SCHEDULES))
    b_dec_init: Literal["zeros", "mean", "median"] = setting("zeros", one_of(("zeros", "mean", "median")))
    normalise_decoder: bool | None = setting(None, optional(boolean))
    k_max: int = setting(1, integer(1))
    k_aux: int = setting(0, integer(0))
    init_threshold: float = setting(0.001, positive_number)

    def relations(self, valid: frozenset[str]) -> Iterable[str]:
        if {"k_max", "n_latents"} <= valid and self.k_max > self.n_latents:
            yield f"k_max ({self.k_max}) must be at most n_latents ({self.n_latents})"
        if {"k_aux", "n_latents"} <= valid and self.k_aux > self.n_latents:
            yield f"k_aux must be an integer in [0, n_latents], got {self.k_aux!r}"

    @property
    def renormalise(self) -> bool:
        return self.kind in ("topk", "batchtopk") if self.normalise_decoder is None else self.normalise_decoder

    def optimizer(self) -> optax.GradientTransformation:
        return adamw(steps=self.steps, lr=self.lr, warmup_steps=self.warmup_steps, schedule=self.schedule)


class TrainedSAEs(eqx.Module):
    """The result of one vmapped run: every member's SAE (leaves with a leading member axis), loss curves and the
    training-time dead-latent counters."""

    saes: SAE
    loss: Float[Array, "member step"]
    mse: Float[Array, "member step"]
    since_fired: Int[Array, "member n_latents"]  # training examples since each latent last fired

    @property
    def n_members(self) -> int:
        return self.loss.shape[0]

    def member(self, i: int) -> SAE:
        """Member `i`'s SAE, unstacked."""
        return jax.tree.map(lambda leaf: leaf[i] if eqx.is_array(leaf) else leaf, self.saes)


def _initial_b_dec(cfg: SAEConfig, truth: GroundTruth, key) -> Float[Array, " d"]:
    if cfg.b_dec_init == "zeros":
        return jnp.zeros(truth.d)
    x = truth.sample(key, 4096)
    return jnp.mean(x, axis=0) if cfg.b_dec_init == "mean" else jnp.median(x, axis=0)


def _loss(sae: SAE, x: Float[Array, "batch d"], h: Hyper, dead: Array, k_aux: int):
    z = sae.train_codes(x, h)
    x_hat = sae.decode(z)
    mse = jnp.mean(jnp.sum((x - x_hat) ** 2, axis=-1))
    total = mse + sae.penalty(x, z, h)
    if k_aux:
        total = total + h.aux_coef * aux_k_loss(sae, x, x_hat, dead)
    return total, (mse, jnp.any(z != 0, axis=0))


def sae_update(state: TrainState, since_fired: Int[Array, " n_latents"], x: Float[Array, "batch d"], h: Hyper,
               cfg: SAEConfig, optimizer: optax.GradientTransformation):
    """One optimiser step on the batch `x`; returns the new state, the new dead-latent counters, the loss and MSE."""
    dead = since_fired >= h.dead_after
    sae, opt_state, loss, (mse, fired) = update(lambda sae, x: _loss(sae, x, h, dead, cfg.k_aux), optimizer,
                                                state.model, state.opt_state, x,
                                                project=normalise_decoder if cfg.renormalise else None)
    since_fired = jnp.where(fired, 0, since_fired + x.shape[0])
    return TrainState(step=state.step + 1, model=sae, opt_state=opt_state, key=state.key), since_fired, loss, mse


def sae_step(state: TrainState, since_fired: Int[Array, " n_latents"], truth: GroundTruth, h: Hyper, cfg: SAEConfig,
             optimizer: optax.GradientTransformation):
    """`sae_update` on a fresh batch drawn from the state's own key (each member its own data stream)."""
    key, batch_key = jax.random.split(state.key)
    state = TrainState(step=state.step, model=state.model, opt_state=state.opt_state, key=key)
    return sae_update(state, since_fired, truth.sample(batch_key, cfg.batch_size), h, cfg, optimizer)


def calibrate_threshold(sae: BatchTopKSAE, truth: GroundTruth, key, h: Hyper, cfg: SAEConfig,
                        n_batches: int = 8) -> BatchTopKSAE:
    """BatchTopK's inference threshold: the mean over `n_batches` training-size batches of the smallest activation
    the batch-level top-k keeps (Bussmann et al. 2024)."""

    def smallest_kept(k):
        z = sae.train_codes(truth.sample(k, cfg.batch_size), h)
        return jnp.min(jnp.where(z > 0, z, jnp.inf))

    thresholds = jax.vmap(smallest_kept)(jax.random.split(key, n_batches))
    return eqx.tree_at(lambda s: s.threshold, sae, jnp.mean(thresholds))


def train_saes(truth: GroundTruth, cfg: SAEConfig, hypers: Hyper, seeds: Int[Array, " member"],
               data_seed: int | None = None) -> TrainedSAEs:
    """Train one SAE per member (`seeds[i]`, `hypers` row i) as a single vmapped, compiled program.

    **Arguments:**

    - `truth`: supplies the data stream (`truth.sample`) and the input width `truth.d`.
    - `cfg`: what all members share.
    - `hypers`: a `Hyper` whose leaves have a leading member axis (`stack_hypers`).
    - `seeds`: `[member]` integers; a member's seed picks its initialisation and its data stream, so members with the
      same seed see the same batches (a clean hyperparameter sweep) and different seeds are independent.
    - `data_seed`: if given, every member trains on one shared stream of batches from this seed, drawn once per step
      rather than once per member (seeds then pick only the initialisations): the cheaper sweep when sampling costs
      as much as the SAE step.

    **Returns:** `TrainedSAEs`.
    """
    seeds = jnp.asarray(seeds, jnp.int32)
    if seeds.ndim != 1 or any(leaf.shape[:1] != seeds.shape for leaf in jax.tree.leaves(hypers)):
        raise ConfigError(f"seeds must be [member] and every Hyper leaf [member, ...]; got seeds {seeds.shape} and "
                          f"Hyper leaves {[leaf.shape for leaf in jax.tree.leaves(hypers)]}")
    if cfg.kind in ("topk", "batchtopk") and int(jnp.max(hypers.k)) > cfg.k_max:
        raise ConfigError(f"a member's k ({int(jnp.max(hypers.k))}) exceeds k_max ({cfg.k_max})")
    if data_seed is None:
        saes, loss, mse, since = make_trainer(truth, cfg)(seeds, hypers)
    else:
        saes, loss, mse, since = make_trainer(truth, cfg, shared_data=True)(seeds, hypers, jnp.asarray(data_seed))
    return TrainedSAEs(saes=saes, loss=loss, mse=mse, since_fired=since)


def make_trainer(truth: GroundTruth, cfg: SAEConfig, shared_data: bool = False):
    """The compiled program behind `train_saes` (unchecked): `(seeds [member], hypers) -> (saes, loss, mse,
    since_fired)`, or with `shared_data` `(seeds, hypers, data_seed)`. Calling the same trainer again with the same
    number of members reuses its compiled program (what the speed benchmark times).

    Independent streams: the whole run of one member is a `lax.scan`, vmapped over members. Shared stream: the scan
    is outside, and each step samples one batch and vmaps the members' updates over it."""
    optimizer = cfg.optimizer()

    def init(seed, h):
        init_key, bias_key, data_key, calib_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        sae = init_sae(cfg.kind, truth.d, cfg.n_latents, init_key, h, _initial_b_dec(cfg, truth, bias_key),
                       k_max=cfg.k_max, k_aux=cfg.k_aux, init_threshold=cfg.init_threshold)
        opt_state = optimizer.init(eqx.filter(sae, eqx.is_inexact_array))
        state = TrainState(step=jnp.asarray(0, jnp.int32), model=sae, opt_state=opt_state, key=data_key)
        return state, jnp.zeros(cfg.n_latents, jnp.int32), calib_key

    def finish(state, calib_key, h):
        sae = state.model
        return calibrate_threshold(sae, truth, calib_key, h, cfg) if isinstance(sae, BatchTopKSAE) else sae

    def one(seed, h):
        state, since0, calib_key = init(seed, h)

        def body(carry, _):
            state, since, loss, mse = sae_step(*carry, truth, h, cfg, optimizer)
            return (state, since), (loss, mse)

        (state, since), (loss, mse) = jax.lax.scan(body, (state, since0), length=cfg.steps)
        return finish(state, calib_key, h), loss, mse, since

    if not shared_data:
        return eqx.filter_jit(eqx.filter_vmap(one))

    update_all = eqx.filter_vmap(lambda st, sn, x, h: sae_update(st, sn, x, h, cfg, optimizer),
                                 in_axes=(0, 0, None, 0))

    @eqx.filter_jit
    def shared(seeds, hypers, data_seed):
        states, since0, calib_keys = eqx.filter_vmap(init)(seeds, hypers)

        def body(carry, key):
            states, since, loss, mse = update_all(*carry, truth.sample(key, cfg.batch_size), hypers)
            return (states, since), (loss, mse)

        keys = jax.random.split(jax.random.PRNGKey(data_seed), cfg.steps)
        (states, since), (loss, mse) = jax.lax.scan(body, (states, since0), keys)
        saes = eqx.filter_vmap(finish)(states, calib_keys, hypers)
        return saes, loss.T, mse.T, since

    return shared
