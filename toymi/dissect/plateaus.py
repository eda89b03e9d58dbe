"""Activation plateaus and sensitive directions (Heimersheim & Mendel 2024, "Activation plateaus & sensitive
directions in GPT2"): move one activation along a direction and watch the output distribution.

Start from an activation `a` (a site, layer and position on a base input) and add `t * d` for a grid of `t`:

- `real`: `d = a_other - a`, toward the same activation on another input (`t = 1` is that input's activation);
- `random`: a random direction with the same norm as the real one;
- `steering`: a difference of means between two sets of inputs, scaled to the same norm.

The output's KL divergence from the unperturbed one, against `t`, is the curve. Real directions in trained models
tend to show a plateau (almost no change for small `t`, then a sharp rise); random directions a smooth, weaker
change. Putting the three side by side says whether the model is robust to small moves along the directions its
own activations take, and how sensitive it is off them.

Every base input × direction × step is one compiled `jax.vmap` of `model.run` with a `steer` intervention.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.jit import jit
from toymi.model.interventions import steer
from toymi.model.sites import check_site

DIRECTIONS = ("real", "random", "steering")


def kl_divergence(base_logits: Float[Array, "*b vocab"], logits: Float[Array, "*b vocab"]) -> Float[Array, "*b"]:
    """KL(base || new) of the softmax distributions, per leading index (nats)."""
    base = jax.nn.log_softmax(base_logits, axis=-1)
    new = jax.nn.log_softmax(logits, axis=-1)
    return (jnp.exp(base) * (base - new)).sum(-1)


@jit
def site_activation(model, tokens: Int[Array, "batch pos"], site: str, layer: int | None,
                    position: int) -> Float[Array, "batch ..."]:
    """The activation at `site` (at `layer`) and `position` for each sequence, e.g. `[batch, d_model]`."""
    _check(model, site, layer, position, tokens.shape[-1])
    _, acts = model.run(tokens, capture=[site])
    values = acts[site] if layer is None else acts[site, layer]  # [batch, pos, ...]
    return values[:, position]


def steering_vector(model, tokens_a: Int[Array, "a pos"], tokens_b: Int[Array, "b pos"], site: str,
                    layer: int | None, position: int) -> Float[Array, "..."]:
    """Mean activation over `tokens_a` minus mean over `tokens_b` (at the site, layer and position)."""
    return (site_activation(model, tokens_a, site, layer, position).mean(0)
            - site_activation(model, tokens_b, site, layer, position).mean(0))


@jit
def perturbation_kl(model, tokens: Int[Array, " pos"], site: str, layer: int | None, position: int,
                    displacements: Float[Array, "direction ..."], ts: Float[Array, " step"],
                    kl_positions: tuple[int, ...] | None = None) -> Float[Array, "direction step"]:
    """KL of the outputs from the unperturbed ones when `t * displacement` is added to the activation, for every
    displacement and `t`: one vmap over both.

    **Arguments:**

    - `model`: a transformer (anything with `run` and a `pos` axis at `site`).
    - `tokens`: one sequence; `site`, `layer` (None for a site outside the layers), `position`: where to perturb.
    - `displacements`: `[direction, ...]`, each of the site's per-position shape (e.g. `[d_model]`).
    - `ts`: the multiples of each displacement to add.
    - `kl_positions`: output positions whose KL is averaged; default every position from `position` on (earlier
      ones cannot change: attention is causal).

    **Returns:** `[direction, step]` mean KL (nats).
    """
    positions = tuple(range(position, tokens.shape[-1])) if kl_positions is None else tuple(kl_positions)
    idx = np.asarray(positions)
    base = model.run(tokens)[0][idx]

    def kl_at(d, t):
        logits, _ = model.run(tokens, interventions=[steer(site, t * d, layer=layer, positions=position)])
        return kl_divergence(base, logits[idx]).mean()

    return jax.vmap(lambda d: jax.vmap(lambda t: kl_at(d, t))(ts))(displacements)


@dataclasses.dataclass(frozen=True)
class Plateaus:
    """What `plateau_sweep` returns.

    - `ts`: `[step]` multiples of the real displacement's length (the distance axis).
    - `kl`: `[direction, base, step]` mean output KL (nats); directions named in `names`.
    - `distance`: `[base]` the real displacement's norm per base input (`t = 1` is that far).
    - `displacements`: `[direction, base, ...]` what `t` multiplies (every direction has the real one's norm).
    """

    ts: np.ndarray
    kl: np.ndarray
    names: tuple[str, ...]
    distance: np.ndarray
    displacements: np.ndarray


def plateau_sweep(
    model, base_tokens: Int[Array, "batch pos"], other_tokens: Int[Array, "batch pos"], site: str,
    layer: int | None, position: int, ts: Float[Array, " step"], *, key: PRNGKeyArray,
    steering: Float[Array, "..."] | None = None, kl_positions: tuple[int, ...] | None = None,
) -> Plateaus:
    """Output KL against distance along real, random and (optionally) steering directions, for every base input.

    **Arguments:**

    - `base_tokens`, `other_tokens`: `[batch, pos]`; base `i` moves toward `other_tokens[i]`'s activation.
    - `site`, `layer`, `position`: the activation to move (e.g. `"resid_pre"`, 1, the `=` token).
    - `ts`: `[step]` distances in units of each base's real displacement norm (include 0 and 1 to see both ends).
    - `key`: draws the random directions (one per base input).
    - `steering`: a direction of the site's per-position shape (`steering_vector`), or None to leave it out.
    - `kl_positions`: see `perturbation_kl`.

    **Returns:** a `Plateaus`; `kl[0]` is `real`, `kl[1]` `random`, `kl[2]` `steering` when given.
    """
    base_tokens, other_tokens = jnp.asarray(base_tokens), jnp.asarray(other_tokens)
    if base_tokens.ndim != 2 or base_tokens.shape != other_tokens.shape:
        raise ValueError(f"base_tokens and other_tokens must both be [batch, pos] of one shape; got "
                         f"{base_tokens.shape} and {other_tokens.shape}")
    base = site_activation(model, base_tokens, site, layer, position)
    real = site_activation(model, other_tokens, site, layer, position) - base  # [batch, ...]
    norm = _norm(real)  # [batch]
    random = jax.random.normal(key, real.shape)
    displacements = [real, _to_norm(random, norm)]
    if steering is not None:
        steering = jnp.asarray(steering, real.dtype)
        if steering.shape != real.shape[1:]:
            raise ValueError(f"steering must have the site's per-position shape {real.shape[1:]}, got {steering.shape}")
        displacements.append(_to_norm(jnp.broadcast_to(steering, real.shape), norm))
    stacked = jnp.stack(displacements, axis=1)  # [batch, direction, ...]
    kl = _sweep(model, base_tokens, stacked, jnp.asarray(ts, jnp.float32), site, layer, position,
                None if kl_positions is None else tuple(kl_positions))
    return Plateaus(np.asarray(ts), np.asarray(kl).transpose(1, 0, 2), DIRECTIONS[:len(displacements)],
                    np.asarray(norm), np.asarray(stacked).swapaxes(0, 1))


@jit
def _sweep(model, tokens, displacements, ts, site, layer, position, kl_positions):
    return jax.vmap(lambda t, d: perturbation_kl(model, t, site, layer, position, d, ts, kl_positions))(
        tokens, displacements)


def _norm(x: Array) -> Array:
    return jnp.sqrt((x.reshape(x.shape[0], -1) ** 2).sum(-1))


def _to_norm(x: Array, norm: Array) -> Array:
    """Each row of `x` rescaled to the matching `norm`."""
    scale = norm / jnp.maximum(_norm(x), 1e-12)
    return x * scale.reshape((-1,) + (1,) * (x.ndim - 1))


def _check(model, site: str, layer: int | None, position: int, n_pos: int) -> None:
    info = check_site(site, model.config)
    if not info.axes or info.axes[0] != "pos":
        raise ValueError(f"site {site!r} has axes {info.axes}; plateaus need a site whose first axis is 'pos'")
    if info.per_layer != (layer is not None):
        raise ValueError(f"site {site!r} is {'' if info.per_layer else 'not '}per-layer: "
                         f"{'give a layer' if info.per_layer else 'pass layer=None'}")
    if not 0 <= position < n_pos:
        raise ValueError(f"position {position} is out of range for sequences of length {n_pos}")
