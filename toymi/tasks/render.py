"""Shared pieces of the tasks' token rendering (`Task.render_tokens`, `to_string`, `from_string`).

Sequence tasks check token ids against their vocabulary here, so a wrong id is one line naming the task; feature-
vector tasks (TMS, compressed computation, AND gates) write an input as its active features, `f3=0.71 f17=0.2`,
each value printed with the fewest digits that read back as the same float32, so `from_string(to_string(x))` is `x`
exactly.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.host import to_device

NO_FEATURES = "(no active features)"  # to_string of an all-zero input: readable, and it reads back as zeros
_FEATURE = re.compile(r"f(\d+)(?:=(\S+))?")


def one_sequence(tokens, vocab: int, task: str) -> Int[np.ndarray, " pos"]:
    """`tokens` as a host int array of one sequence, every id checked against `[0, vocab)`."""
    host = np.asarray(tokens)
    if host.ndim != 1:
        raise ValueError(f"{task}: render one sequence at a time ([pos] token ids), got shape {host.shape}")
    if host.size and not np.issubdtype(host.dtype, np.integer):
        raise TypeError(f"{task}: token ids must be integers, got dtype {host.dtype}")
    bad = np.nonzero((host < 0) | (host >= vocab))[0]
    if bad.size:
        raise ValueError(f"{task}: token id {int(host[bad[0]])} at position {int(bad[0])} is not in its "
                         f"vocabulary [0, {vocab})")
    return host.astype(np.int64)


def as_tokens(ids: list[int]) -> Int[Array, " pos"]:
    """What `from_string` returns: an int32 array."""
    return to_device(np.asarray(ids, np.int32).reshape(-1))


def float_text(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (`0.71`, not `0.7099999785423279`)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def one_feature_vector(x, n_features: int, task: str) -> Float[np.ndarray, " feature"]:
    host = np.asarray(x, np.float32)
    if host.shape != (n_features,):
        raise ValueError(f"{task}: an input is one [n_features={n_features}] feature vector, got shape {host.shape}")
    return host


def render_features(x, n_features: int, task: str, boolean: bool = False) -> list[str]:
    """One label per feature: `f3=0.71` (`f3=1` / `f3=0` for boolean features)."""
    host = one_feature_vector(x, n_features, task)
    return [f"f{i}={int(v > 0.5) if boolean else float_text(v)}" for i, v in enumerate(host)]


def features_to_string(x, n_features: int, task: str, boolean: bool = False) -> str:
    """The active (nonzero) features: `f3=0.71 f17=0.2`, or `f3 f17` for boolean features."""
    host = one_feature_vector(x, n_features, task)
    if boolean and not np.isin(host, (0.0, 1.0)).all():
        raise ValueError(f"{task}: boolean features are 0 or 1, got {host[~np.isin(host, (0.0, 1.0))][0]}")
    active = np.nonzero(host)[0]
    words = [f"f{i}" if boolean else f"f{i}={float_text(host[i])}" for i in active]
    return " ".join(words) or NO_FEATURES


def features_from_string(text: str, n_features: int, task: str, boolean: bool = False) -> Float[Array, " feature"]:
    """The feature vector `features_to_string` wrote (float32 `[n_features]`); a bad word is a one-line error."""
    x = np.zeros(n_features, np.float32)
    if text.strip() == NO_FEATURES:
        return jnp.asarray(x)
    seen = set()
    for word in text.split():
        match = _FEATURE.fullmatch(word)
        if match is None or (match.group(2) is None) != boolean:
            form = "f3" if boolean else "f3=0.71"
            raise ValueError(f"{task}: cannot read {word!r} in {text!r}; write each active feature as {form}")
        i = int(match.group(1))
        if not 0 <= i < n_features or i in seen:
            why = "appears twice" if i in seen else f"is not in [0, {n_features})"
            raise ValueError(f"{task}: feature index {i} in {text!r} {why}")
        seen.add(i)
        try:
            value = 1.0 if boolean else float(np.float32(match.group(2)))
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise ValueError(f"{task}: {word!r} in {text!r} has no finite value")
        x[i] = value
    return jnp.asarray(x)
