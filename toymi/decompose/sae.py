"""Sparse autoencoders as Equinox modules: ReLU + L1, TopK (+ AuxK), BatchTopK and JumpReLU.

All four share one affine encoder and decoder and differ only in how pre-activations become sparse codes:

    pre = (x - b_dec) @ W_enc + b_enc        # [..., n_latents]
    z   = sparsify(pre)                      # ReLU / TopK / BatchTopK / JumpReLU
    x̂   = z @ W_dec + b_dec                  # [..., d]

`encode(x)` / `decode(z)` work on any leading axes and are what scoring and splicing use (BatchTopK's `encode` uses
its inference threshold, since a batch-level top-k makes one example's code depend on the others). Training calls
`train_codes(x, hyper)` on a batch instead, which is where TopK's k and BatchTopK's batch-level selection live.
`directions` are the unnormalised decoder rows `[n_latents, d]`.

Per-member hyperparameters (`Hyper`) are arrays, not static settings, so many configurations train as one vmapped
program; only shapes (`n_latents`, `k_max`, `k_aux`) are static.

References: L1 weighted by decoder norms (Anthropic, "Towards Monosemanticity" and the April 2024 update); TopK and
AuxK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"); BatchTopK (Bussmann et al. 2024); JumpReLU with
straight-through rectangle-kernel pseudo-derivatives (Rajamanoharan et al. 2024).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.decompose.straight_through import heaviside, jumprelu
from toymi.errors import ConfigError
from toymi.trees import stack

KINDS = ("relu", "topk", "batchtopk", "jumprelu")


class Hyper(eqx.Module):
    """One configuration's hyperparameters, as arrays (a leading member axis when many train at once).

    - `sparsity`: the L1 coefficient (`relu`) or the L0 coefficient (`jumprelu`); unused by the top-k kinds.
    - `k`: active latents per example (`topk`; `batchtopk` keeps `k · batch` per batch); at most the SAE's `k_max`.
    - `aux_coef`: weight of the AuxK dead-latent loss (Gao et al. use 1/32); 0 turns it off.
    - `dead_after`: a latent that has not fired on this many training examples counts as dead (for AuxK).
    - `bandwidth`: JumpReLU's pseudo-derivative kernel width ε.
    """

    sparsity: Float[Array, ""]
    k: Int[Array, ""]
    aux_coef: Float[Array, ""]
    dead_after: Int[Array, ""]
    bandwidth: Float[Array, ""]


def hyper(sparsity: float = 0.0, k: int = 1, aux_coef: float = 0.0, dead_after: int = 100_000,
          bandwidth: float = 0.001) -> Hyper:
    """A `Hyper` from Python numbers (scalars); `stack_hypers` gives many members a leading axis."""
    if sparsity < 0 or k < 1 or aux_coef < 0 or dead_after < 1 or bandwidth <= 0:
        raise ConfigError(f"invalid SAE hyperparameters: sparsity={sparsity} (>= 0), k={k} (>= 1), aux_coef="
                          f"{aux_coef} (>= 0), dead_after={dead_after} (>= 1), bandwidth={bandwidth} (> 0)")
    return Hyper(jnp.asarray(sparsity, jnp.float32), jnp.asarray(k, jnp.int32), jnp.asarray(aux_coef, jnp.float32),
                 jnp.asarray(dead_after, jnp.int32), jnp.asarray(bandwidth, jnp.float32))


def stack_hypers(hypers: list[Hyper]) -> Hyper:
    """Stack scalar `Hyper`s into one with a leading member axis."""
    return stack(hypers)


class SAE(eqx.Module):
    """Base of every sparse autoencoder: the affine maps, decoding, directions and the L1/L0-free reconstruction.

    Subclasses define `train_codes` (codes for a training batch) and `encode` (codes at inference), and may add a
    `penalty`. Build one with `init_sae`.
    """

    W_enc: Float[Array, "d n_latents"]
    b_enc: Float[Array, " n_latents"]
    W_dec: Float[Array, "n_latents d"]
    b_dec: Float[Array, " d"]

    kind: ClassVar[str]

    def pre(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch n_latents"]:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def decode(self, z: Float[Array, "*batch n_latents"]) -> Float[Array, "*batch d"]:
        return z @ self.W_dec + self.b_dec

    @property
    def directions(self) -> Float[Array, "n_latents d"]:
        """Decoder rows, unnormalised (metrics normalise for cosines and use norms for ML2R)."""
        return self.W_dec

    @abc.abstractmethod
    def encode(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch n_latents"]: ...

    @abc.abstractmethod
    def train_codes(self, x: Float[Array, "batch d"], h: Hyper) -> Float[Array, "batch n_latents"]: ...

    def penalty(self, x: Float[Array, "batch d"], z: Float[Array, "batch n_latents"], h: Hyper) -> Float[Array, ""]:
        """The sparsity term added to the reconstruction loss (none for the top-k kinds)."""
        return jnp.zeros(())

    def __call__(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch d"]:
        return self.decode(self.encode(x))


class ReLUSAE(SAE):
    """z = ReLU(pre), with an L1 penalty weighted by decoder row norms (so shrinking codes while growing the decoder
    does not dodge it, and decoder normalisation is optional)."""

    kind: ClassVar[str] = "relu"

    def encode(self, x):
        return jax.nn.relu(self.pre(x))

    def train_codes(self, x, h):
        return self.encode(x)

    def penalty(self, x, z, h):
        norms = jnp.linalg.norm(self.W_dec, axis=-1)  # [n_latents]
        return h.sparsity * jnp.mean(jnp.sum(z * norms, axis=-1))


def top_k_codes(pre: Float[Array, "*batch n"], k: Int[Array, ""], k_max: int) -> Float[Array, "*batch n"]:
    """ReLU of the `k` largest entries of `pre` per row, zeros elsewhere (`k` traced, at most the static `k_max`).

    `lax.top_k` returns its `k_max` values sorted, so the first `k` of them are the top `k` (exactly `k` kept).
    """
    values, idx = jax.lax.top_k(pre, k_max)  # [..., k_max], descending
    keep = jnp.arange(k_max) < k
    values = jnp.where(keep, jax.nn.relu(values), 0.0)
    flat_pre, flat_idx, flat_val = pre.reshape(-1, pre.shape[-1]), idx.reshape(-1, k_max), values.reshape(-1, k_max)
    out = jax.vmap(lambda row, i, v: jnp.zeros_like(row).at[i].set(v))(flat_pre, flat_idx, flat_val)
    return out.reshape(pre.shape)


class TopKSAE(SAE):
    """z = ReLU(TopK_k(pre)): exactly k candidates per example; no sparsity penalty. With `aux_coef > 0` training adds
    Gao et al.'s AuxK loss: the top `k_aux` dead latents reconstruct the main reconstruction's residual."""

    k_max: int = eqx.field(static=True)
    k_aux: int = eqx.field(static=True)
    k: Int[Array, ""]  # the k used by `encode` (the trained member's k)

    kind: ClassVar[str] = "topk"

    def encode(self, x):
        return top_k_codes(self.pre(x), self.k, self.k_max)

    def train_codes(self, x, h):
        return top_k_codes(self.pre(x), h.k, self.k_max)


class BatchTopKSAE(SAE):
    """Training keeps the `k · batch` largest pre-activations across the whole batch (so examples share a budget);
    inference uses a single threshold: z = pre · [pre > threshold], calibrated after training as the mean over batches
    of the smallest kept activation (Bussmann et al. 2024)."""

    k_max: int = eqx.field(static=True)
    k_aux: int = eqx.field(static=True)
    threshold: Float[Array, ""]

    kind: ClassVar[str] = "batchtopk"

    def encode(self, x):
        pre = self.pre(x)
        return jnp.where(pre > self.threshold, jax.nn.relu(pre), 0.0)

    def train_codes(self, x, h):
        pre = self.pre(x)
        flat = pre.reshape(-1)
        # k_max · batch is static; keep the first k · batch of the sorted values
        return top_k_codes(flat[None], h.k * x.shape[0], self.k_max * x.shape[0])[0].reshape(pre.shape)


def aux_k_loss(sae: TopKSAE | BatchTopKSAE, x: Float[Array, "batch d"], x_hat: Float[Array, "batch d"],
               dead: Float[Array, " n_latents"]) -> Float[Array, ""]:
    """Gao et al.'s AuxK: squared error of the top-`k_aux` dead latents' reconstruction of the (fixed) residual
    x − x̂, over the residual's own squared norm (their normalised MSE, so its scale does not shrink as x̂ improves).
    It gives dead latents a gradient towards what the live ones miss; zero gradient when none is dead."""
    residual = jax.lax.stop_gradient(x - x_hat)
    pre = jnp.where(dead > 0, sae.pre(x), -jnp.inf)
    z_aux = top_k_codes(pre, jnp.asarray(sae.k_aux), sae.k_aux)
    err = jnp.sum((residual - z_aux @ sae.W_dec) ** 2, axis=-1)
    return jnp.mean(err) / (jnp.mean(jnp.sum(residual ** 2, axis=-1)) + 1e-8)


class JumpReLUSAE(SAE):
    """z = pre · H(pre − θ) with a learned per-latent threshold θ = exp(log_threshold) and an L0 penalty; both get
    gradients through straight-through rectangle-kernel pseudo-derivatives (bandwidth ε)."""

    log_threshold: Float[Array, " n_latents"]
    bandwidth: Float[Array, ""]  # the trained member's ε, kept for `encode` (where it does not matter)

    kind: ClassVar[str] = "jumprelu"

    @property
    def threshold(self) -> Float[Array, " n_latents"]:
        return jnp.exp(self.log_threshold)

    def encode(self, x):
        return jumprelu(self.pre(x), self.threshold, self.bandwidth)

    def train_codes(self, x, h):
        return jumprelu(self.pre(x), self.threshold, h.bandwidth)

    def penalty(self, x, z, h):
        l0 = jnp.sum(heaviside(self.pre(x), self.threshold, h.bandwidth), axis=-1)
        return h.sparsity * jnp.mean(l0)


_CLASSES = {cls.kind: cls for cls in (ReLUSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE)}


def init_sae(kind: str, d: int, n_latents: int, key: PRNGKeyArray, h: Hyper, b_dec: Float[Array, " d"] | None = None,
             k_max: int = 1, k_aux: int = 0, init_threshold: float = 0.001) -> SAE:
    """A fresh SAE: decoder rows random unit vectors, encoder their transpose, b_enc 0, b_dec given (e.g. the data
    mean or median, which starts the SAE at the data's centre) or 0.

    **Arguments:**

    - `kind`: `"relu"`, `"topk"`, `"batchtopk"` or `"jumprelu"`.
    - `d`, `n_latents`: input width and dictionary size.
    - `key`: initialisation key.
    - `h`: this member's hyperparameters (TopK's k and JumpReLU's bandwidth are kept for inference).
    - `b_dec`: the decoder bias at the start (`[d]`), None for zeros.
    - `k_max`, `k_aux`: static top-k widths (top-k kinds): the largest k any member uses, and AuxK's k.
    - `init_threshold`: JumpReLU's initial θ.

    **Returns:** an `SAE` subclass instance.
    """
    if kind not in _CLASSES:
        raise ConfigError(f"unknown SAE kind {kind!r}; expected one of {KINDS}")
    if d < 1 or n_latents < 1:
        raise ConfigError(f"SAE needs d >= 1 and n_latents >= 1, got d={d}, n_latents={n_latents}")
    if kind in ("topk", "batchtopk") and not 1 <= k_max <= n_latents:
        raise ConfigError(f"{kind} SAE needs 1 <= k_max <= n_latents={n_latents}, got k_max={k_max}")
    if k_aux < 0 or k_aux > n_latents:
        raise ConfigError(f"k_aux must be in [0, n_latents={n_latents}], got {k_aux}")
    W_dec = jax.random.normal(key, (n_latents, d))
    W_dec = W_dec / jnp.linalg.norm(W_dec, axis=-1, keepdims=True)
    base = dict(W_enc=W_dec.T, b_enc=jnp.zeros(n_latents), W_dec=W_dec,
                b_dec=jnp.zeros(d) if b_dec is None else jnp.asarray(b_dec, jnp.float32))
    if kind == "relu":
        return ReLUSAE(**base)
    if kind == "topk":
        return TopKSAE(**base, k_max=k_max, k_aux=k_aux, k=h.k)
    if kind == "batchtopk":
        return BatchTopKSAE(**base, k_max=k_max, k_aux=k_aux, threshold=jnp.zeros(()))
    return JumpReLUSAE(**base, log_threshold=jnp.full(n_latents, jnp.log(init_threshold)), bandwidth=h.bandwidth)


def normalise_decoder(sae: SAE) -> SAE:
    """Decoder rows rescaled to unit norm (a latent's scale then lives in its code)."""
    norms = jnp.linalg.norm(sae.W_dec, axis=-1, keepdims=True)
    return eqx.tree_at(lambda s: s.W_dec, sae, sae.W_dec / jnp.maximum(norms, 1e-8))
