"""`toymi.jit`: `eqx.filter_jit` whose on-device checks come out as one readable line.

toymi checks what it cannot check while tracing (an intervention's traced layer, head or position index; a traced
token id) on the device with `eqx.error_if`. A failing check stops the computation, but under plain `jax.jit` JAX
reports it as an `INTERNAL: CpuCallback error` of about 2,000 characters with toymi's sentence inside. Compiling
with `toymi.jit` instead re-raises it as `toymi.errors.CheckFailed` whose message is that sentence alone.

    >>> grid = toymi.jit(jax.vmap(ablate))(layers, heads)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import equinox as eqx

from toymi.errors import CHECK_PREFIX, CheckFailed

_CHECK = re.compile(re.escape(CHECK_PREFIX) + r"([^\n]*)")


def check_message(error: BaseException) -> str | None:
    """The message of the toymi on-device check that failed inside `error`, or None if it is not one."""
    match = _CHECK.search(str(error))
    return match.group(1) if match else None


def jit(fn: Callable) -> Callable:
    """`eqx.filter_jit(fn)`, raising `CheckFailed` with toymi's own one-line message when an on-device check fails."""
    compiled = eqx.filter_jit(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 — only toymi's own checks are re-raised; anything else as it was
            message = check_message(error)
            if message is None:
                raise
            raise CheckFailed(message) from None

    return wrapper
