"""Transcoders: a sparse, wide replacement for an MLP, mapping the MLP's input to its output (Dunefsky et al. 2024),
optionally with a learned linear skip connection (Paulo et al. 2025, "skip transcoders").

    z     = act(x_in @ W_enc + b_enc)                  [n_latents]   act: ReLU, or TopK (keep the k largest, ReLU'd)
    y_hat = z @ W_dec + b_dec  (+ x_in @ W_skip)       [d_out]

Why a transcoder rather than an SAE on the MLP's output: its latents read the MLP's *input* and write its
*output*, so each latent is an input-to-output computation (a circuit edge through the MLP), and splicing it in
(`toymi.decompose.splice`) replaces the MLP itself. The skip connection takes the part of the MLP that is linear, so
the sparse latents only have to explain the nonlinear rest.

An SAE is the special case `d_in == d_out`, trained on `(x, x)`, without a skip: `encode`, `decode`, `directions`
match D1's SAEs (`toymi.decompose.sae`), so metrics and splicing treat both alike. `predict` (= `__call__`) is the
whole replacement, skip included; `decode` alone is the sparse part.

Training (`train_transcoder`) streams `(x_in, y)` pairs from a sampler on device inside one `lax.scan` (no stored
activations). The objective is scale-free: the fraction of variance unexplained plus `l1` times the
decoder-norm-weighted L1 of the latents (Anthropic's April 2024 update, so shrinking `W_dec` cannot fake
sparsity), divided by the mean output norm.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.model.mlp import ACTIVATIONS
from toymi.train.update import update
from toymi.validate import is_int

IOSampler = Callable[[PRNGKeyArray, int], tuple[Float[Array, "n d_in"], Float[Array, "n d_out"]]]


class Transcoder(eqx.Module):
    """A sparse map from `d_in` inputs to `d_out` outputs through `n_latents` ReLU or TopK latents.

    **Arguments:**

    - `d_in`, `d_out`: input and output widths (equal, trained on `(x, x)`, for an SAE).
    - `n_latents`: dictionary size.
    - `key`: a `jax.random` key.
    - `skip`: add a learned linear skip `x_in @ W_skip` (initialised at zero).
    - `k`: TopK latents (the `k` largest pre-activations, ReLU'd); None for plain ReLU latents.
    - `dec_norm`: initial norm of each decoder row. Rows start as random unit directions, and `W_enc` as `W_dec`
      transposed (tied) when `d_in == d_out`, else as independent random unit directions.
    """

    W_enc: Float[Array, "d_in n_latents"]
    b_enc: Float[Array, " n_latents"]
    W_dec: Float[Array, "n_latents d_out"]
    b_dec: Float[Array, " d_out"]
    W_skip: Float[Array, "d_in d_out"] | None
    k: int | None = eqx.field(static=True)

    def __init__(self, d_in: int, d_out: int, n_latents: int, key: PRNGKeyArray, *, skip: bool = False,
                 k: int | None = None, dec_norm: float = 0.1):
        for name, value in (("d_in", d_in), ("d_out", d_out), ("n_latents", n_latents)):
            if not is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if k is not None and (not is_int(k) or not 0 < k <= n_latents):
            raise ValueError(f"k must be None (ReLU) or an integer in [1, n_latents={n_latents}], got {k!r}")
        k_dec, k_enc = jax.random.split(key)
        dec = _unit_rows(jax.random.normal(k_dec, (n_latents, d_out)))
        enc = dec if d_in == d_out else _unit_rows(jax.random.normal(k_enc, (n_latents, d_in)))
        self.W_enc = enc.T
        self.b_enc = jnp.zeros(n_latents)
        self.W_dec = dec_norm * dec
        self.b_dec = jnp.zeros(d_out)
        self.W_skip = jnp.zeros((d_in, d_out)) if skip else None
        self.k = k

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_out(self) -> int:
        return self.W_dec.shape[1]

    @property
    def n_latents(self) -> int:
        return self.W_enc.shape[1]

    def encode(self, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch n_latents"]:
        """The latents: ReLU of the pre-activations, or (TopK) only the `k` largest of them, ReLU'd."""
        pre = x @ self.W_enc + self.b_enc
        if self.k is None:
            return jax.nn.relu(pre)
        kth = jax.lax.top_k(pre, self.k)[0][..., -1:]
        return jnp.where(pre >= kth, jax.nn.relu(pre), 0.0)

    def decode(self, z: Float[Array, "*batch n_latents"]) -> Float[Array, "*batch d_out"]:
        """The sparse part of the output, `z @ W_dec + b_dec` (no skip: `predict` adds it)."""
        return z @ self.W_dec + self.b_dec

    def predict(self, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch d_out"]:
        """The whole replacement: `decode(encode(x))` plus the skip connection when there is one."""
        y = self.decode(self.encode(x))
        return y if self.W_skip is None else y + x @ self.W_skip

    def __call__(self, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch d_out"]:
        return self.predict(x)

    @property
    def directions(self) -> Float[Array, "n_latents d_out"]:
        """Decoder rows, unnormalised, as D1's SAEs give them: what each latent writes (metrics normalise for
        cosines and use the norms for ML2R)."""
        return self.W_dec


def _unit_rows(w: Float[Array, "n d"]) -> Float[Array, "n d"]:
    norms = jnp.linalg.norm(w, axis=-1, keepdims=True)
    return w / jnp.where(norms > 0, norms, 1.0)


def transcoder_loss(tc: Transcoder, x: Float[Array, "n d_in"], y: Float[Array, "n d_out"], l1: float,
                    y_variance: Float[Array, ""], y_norm: Float[Array, ""]) -> tuple[Float[Array, ""], dict]:
    """`FVU + l1 · mean Σ_i |z_i| ‖W_dec[i]‖ / y_norm`, and its parts.

    **Arguments:**

    - `tc`: the transcoder.
    - `x`, `y`: a batch of inputs and the outputs to predict.
    - `l1`: the sparsity coefficient (0 for TopK, whose sparsity is fixed by `k`).
    - `y_variance`: `E‖y - E y‖²`, so the error is a fraction of variance unexplained (scale-free).
    - `y_norm`: `E‖y‖`, so the penalty is in units of the output's size (scale-free too).

    **Returns:** `(loss, {"fvu", "l0", "sparsity"})`.
    """
    z = tc.encode(x)
    y_hat = tc.decode(z) if tc.W_skip is None else tc.decode(z) + x @ tc.W_skip
    fvu = jnp.mean(jnp.sum((y_hat - y) ** 2, -1)) / y_variance
    sparsity = jnp.mean(jnp.sum(jnp.abs(z) * jnp.linalg.norm(tc.W_dec, axis=-1), -1)) / y_norm
    return fvu + l1 * sparsity, {"fvu": fvu, "l0": jnp.mean(jnp.sum(z > 0, -1)), "sparsity": sparsity}


def train_transcoder(sample: IOSampler, transcoder: Transcoder, key: PRNGKeyArray, *, steps: int = 2000,
                     batch_size: int = 1024, lr: float = 1e-3, l1: float = 1e-2, warmup: int = 100,
                     log_every: int = 100) -> tuple[Transcoder, dict[str, Array]]:
    """Train on `(x_in, y)` pairs streamed from `sample`, one fresh batch per step, all steps in one compiled scan.

    **Arguments:**

    - `sample`: `(key, n) -> (x_in [n, d_in], y [n, d_out])`, jit-able with static `n` (e.g.
      `toymi.decompose.truths.mlp_io_sampler(model, task, layer)`, or `lambda k, n: (x := f(k, n), x)` for
      an SAE).
    - `transcoder`: the initial `Transcoder` (its widths must match what `sample` gives).
    - `key`: a `jax.random` key for the data stream.
    - `steps`, `batch_size`, `lr`: Adam with linear warmup over `warmup` steps, then constant.
    - `l1`: the sparsity coefficient of `transcoder_loss`.
    - `log_every`: keep the mean loss parts over each block of this many steps.

    **Returns:** `(trained transcoder, history)`; `history` maps `"loss"`, `"fvu"`, `"l0"` to `[steps // log_every]`
    arrays. The output decoder bias starts at the data's mean output, and the loss normalisers come from one batch
    of `batch_size` drawn before training.
    """
    if steps <= 0 or batch_size <= 0 or log_every <= 0 or steps % log_every:
        raise ValueError(f"steps ({steps}) and batch_size ({batch_size}) must be positive and steps a multiple of "
                         f"log_every ({log_every})")
    k_norm, k_data = jax.random.split(key)
    x0, y0 = sample(k_norm, batch_size)
    if x0.shape != (batch_size, transcoder.d_in) or y0.shape != (batch_size, transcoder.d_out):
        raise ValueError(f"sample gave x {x0.shape} and y {y0.shape}; this transcoder needs "
                         f"[{batch_size}, {transcoder.d_in}] and [{batch_size}, {transcoder.d_out}]")
    mean_y = y0.mean(0)
    y_variance = jnp.maximum(jnp.mean(jnp.sum((y0 - mean_y) ** 2, -1)), 1e-12)
    y_norm = jnp.maximum(jnp.mean(jnp.linalg.norm(y0, axis=-1)), 1e-12)
    transcoder = eqx.tree_at(lambda t: t.b_dec, transcoder, mean_y)
    schedule = optax.linear_schedule(0.0, lr, max(warmup, 1))
    optimizer = optax.adam(schedule)
    params, static = eqx.partition(transcoder, eqx.is_inexact_array)
    return _fit(params, static, optimizer, sample, k_data, steps, batch_size, log_every, float(l1), y_variance, y_norm)


@eqx.filter_jit
def _fit(params, static, optimizer, sample, key, steps, batch_size, log_every, l1, y_variance, y_norm):
    def loss(p, x, y):
        return transcoder_loss(eqx.combine(p, static), x, y, l1, y_variance, y_norm)

    def step(carry, step_key):
        batch = sample(step_key, batch_size)
        p, opt_state, value, parts = update(lambda p, xy: loss(p, *xy), optimizer, *carry, batch)
        return (p, opt_state), {"loss": value, **parts}

    keys = jax.random.split(key, steps)
    (params, _), history = jax.lax.scan(step, (params, optimizer.init(params)), keys)
    history = {name: h.reshape(steps // log_every, log_every).mean(1) for name, h in history.items()
               if name != "sparsity"}
    return eqx.combine(params, static), history


def mlp_transcoder(W_in: Float[Array, "d_in d_mlp"], b_in: Float[Array, " d_mlp"] | None,
                   W_out: Float[Array, "d_mlp d_out"], b_out: Float[Array, " d_out"] | None,
                   act_fn: str = "relu") -> Transcoder:
    """The exact transcoder of an MLP `act(x W_in + b_in) W_out + b_out`: one latent per neuron (a `Transcoder` for
    ReLU, else `ActivatedNeurons` with the MLP's elementwise activation, named as in `toymi.model.mlp.ACTIVATIONS`).

    Why: the model's own neurons as a transcoder — the reference a trained one is compared with, and a splice
    that must leave the loss unchanged (tests). Missing biases are zeros.
    """
    d_in, d_mlp = W_in.shape
    d_out = W_out.shape[1]
    tc = Transcoder(d_in, d_out, d_mlp, jax.random.PRNGKey(0))
    tc = eqx.tree_at(lambda t: (t.W_enc, t.b_enc, t.W_dec, t.b_dec), tc,
                     (W_in, jnp.zeros(d_mlp) if b_in is None else b_in, W_out,
                      jnp.zeros(d_out) if b_out is None else b_out))
    return tc if act_fn == "relu" else ActivatedNeurons(tc, act_fn)


class ActivatedNeurons(Transcoder):
    """An MLP's own neurons with an elementwise activation other than ReLU (`"gelu"`, `"gelu_new"`, `"gelu_fast"`)
    as a transcoder: `encode` applies that activation. Every neuron is then a latent, none exactly zero; an
    attribution graph freezes each at its gate `value / pre-activation` (`toymi.circuits.frozen_transformer`), which
    keeps the graph exact (Σ edges + constant = the value), as a ReLU neuron's gate of 0 or 1 does."""

    act_fn: str = eqx.field(static=True)

    def __init__(self, neurons: Transcoder, act_fn: str):
        if act_fn not in ELEMENTWISE:
            raise ValueError(f"neurons need an elementwise activation, one of {sorted(ELEMENTWISE)}; got {act_fn!r}")
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = neurons.W_enc, neurons.b_enc, neurons.W_dec, neurons.b_dec
        self.W_skip, self.k, self.act_fn = None, None, act_fn

    def encode(self, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch n_latents"]:
        return ACTIVATIONS[self.act_fn](x @ self.W_enc + self.b_enc)


# The activations whose neurons are each a function of their own pre-activation (SoLU's softmax mixes them all).
ELEMENTWISE = ("relu", "gelu", "gelu_new", "gelu_fast")


def fraction_variance_unexplained(predict: Callable[[Array], Array], x: Float[Array, "n d_in"],
                                  y: Float[Array, "n d_out"]) -> Float[Array, ""]:
    """`E‖predict(x) - y‖² / E‖y - E y‖²` on one batch (0 = perfect, 1 = no better than the mean)."""
    return jnp.mean(jnp.sum((predict(x) - y) ** 2, -1)) / jnp.mean(jnp.sum((y - y.mean(0)) ** 2, -1))


def layer_transcoders(model, task, n_latents: int, seed: int = 0, skip: bool = False, **train) -> tuple:
    """One transcoder per MLP layer of a transformer, each trained on its layer's MLP at every position of fresh task
    inputs (`mlp_io_sampler`): the replacement a multi-layer attribution graph needs where the model's own neurons
    cannot stand in (GELU). `train`: `train_transcoder`'s settings (steps, batch_size, lr, l1)."""
    from toymi.decompose.truths.sampling import mlp_io_sampler

    keys = jax.random.split(jax.random.PRNGKey(seed), model.config.n_layers)
    out = []
    for layer, key in enumerate(keys):
        init_key, data_key = jax.random.split(key)
        d = model.config.d_model
        trained, _ = train_transcoder(mlp_io_sampler(model, task, layer), Transcoder(d, d, n_latents, init_key,
                                                                                      skip=skip),
                                      data_key, log_every=train.get("steps", 2000), **train)
        out.append(trained)
    return tuple(out)
