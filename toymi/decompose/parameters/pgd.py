"""The 2026 additions to SPD's losses (Goodfire's VPD, as the reference code goodfire-ai/spd has them), as options:

- **Adversarial (PGD) reconstruction.** The stochastic masks `m = g + (1 − g) r` draw `r` at random; PGD instead
  chooses the sources `s` in [0, 1] that make the masked model *worst*: `steps` signed-gradient ascent steps of size
  `step_size` on the reconstruction loss, from `init` ("random", "ones" or "zeroes"), clipped to [0, 1], one source
  per example, position and subcomponent, or one per subcomponent shared by the batch (`shared`). The loss is then
  the reconstruction at `m = g + (1 − g) s` with `s` held fixed (`spd/metrics/pgd_utils.py`), all matrices masked
  at once. A decomposition that passes it is faithful under every mask its importances allow, not only random ones.
- **Frequency-minimality.** Importance-minimality per subcomponent `f_c = mean (g_c + ε)^p` becomes
  `f_c + β f_c^{p₂}` (`losses.importance_minimality`; `spd/metrics/importance_minimality_loss.py`'s `beta`,
  `pnorm_2`), so how often a subcomponent is important is penalised on its own as well as how much.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

PGD_INITS = ("random", "ones", "zeroes")


@dataclasses.dataclass(frozen=True)
class PGDSettings:
    """How the adversarial sources are found (module docstring)."""

    steps: int = 1
    step_size: float = 0.1
    init: str = "random"
    shared: bool = False

    def __post_init__(self):
        if self.init not in PGD_INITS or self.steps < 0 or self.step_size <= 0:
            raise ValueError(f"PGD needs init in {PGD_INITS}, steps >= 0 and step_size > 0; got {self}")


def _initial(init: str, key: PRNGKeyArray, shape: tuple[int, ...]) -> Array:
    if init == "random":
        return jax.random.uniform(key, shape)
    return jnp.full(shape, 1.0 if init == "ones" else 0.0)


def adversarial_sources(loss: Callable[[list[Array]], Float[Array, ""]], g: Sequence[Array], key: PRNGKeyArray,
                        settings: PGDSettings) -> list[Array]:
    """The sources (one array per matrix, the shape of its importance `g`, or `[1, ..., C]` when shared) after
    `settings.steps` ascent steps on `loss(sources)`; held fixed (no gradient flows back through the search)."""
    keys = jax.random.split(key, len(g))
    shapes = [(1,) * (gi.ndim - 1) + gi.shape[-1:] if settings.shared else gi.shape for gi in g]
    sources = [_initial(settings.init, k, s) for k, s in zip(keys, shapes)]

    def step(_, s):
        grads = jax.grad(loss)(s)
        return [jnp.clip(si + settings.step_size * jnp.sign(gi), 0.0, 1.0) for si, gi in zip(s, grads)]

    return jax.lax.stop_gradient(jax.lax.fori_loop(0, settings.steps, step, sources))


def adversarial_masks(g: Sequence[Array], sources: Sequence[Array]) -> list[Array]:
    """`m = g + (1 − g) s`, each source broadcast over what it is shared across."""
    return [gi + (1 - gi) * jnp.broadcast_to(si, gi.shape) for gi, si in zip(g, sources)]
