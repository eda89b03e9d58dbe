"""An up-front memory estimate of a spec (parameters with AdamW's state and gradients, the task's data, the forward
pass's activations on it), refused against the machine's RAM before anything is built or compiled.

It is a rough lower bound from the spec's numbers alone (no arrays are made): a spec it refuses cannot fit; one it
accepts may still not.
"""

from __future__ import annotations

import os

from toymi.errors import ConfigError

EXAMPLE_SETTINGS = ("batch_size", "eval_size", "n_eval")


def physical_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate(spec) -> dict[str, int]:
    """Bytes for `params` (×4: weights, gradients, AdamW's two moments), `data` and `activations`."""
    m = spec.model
    get = lambda name, default=0: getattr(m, name, None) or default  # noqa: E731
    d_model, n_layers, n_ctx = get("d_model"), get("n_layers"), get("n_ctx", 1)
    width = get("n_heads") * get("d_head")
    params = n_layers * (4 * d_model * width + 2 * d_model * get("d_mlp")) + \
        d_model * (get("d_vocab") + get("d_vocab_out") + n_ctx)
    settings = spec.task
    examples = max([int(settings.get(k, 0)) for k in EXAMPLE_SETTINGS if isinstance(settings.get(k), int)] + [1])
    data = 0
    if settings.get("name") == "modular_arithmetic":
        examples = int(settings.get("p", 113)) ** 2  # every pair, built as Python tuples first (~100 bytes each)
        data = examples * 100
    per_example = n_ctx * (d_model * (2 + 2 * n_layers) + n_layers * (get("d_mlp") + get("n_heads") * n_ctx)) + \
        get("d_vocab_out")
    return {"params": 4 * 4 * params, "data": data, "activations": 4 * examples * per_example}


def check_data_memory(task_section: dict) -> None:
    """The data part alone, from the task's settings (checked before a task builds anything)."""
    p = task_section.get("p")
    if task_section.get("name") == "modular_arithmetic" and isinstance(p, int) and p * p * 100 > physical_ram():
        raise ConfigError(f"[task] p={p} needs at least {p * p * 100 / 2**30:.3g} GiB for its {p * p:,} pairs, more "
                          f"than the {physical_ram() / 2**30:.3g} GiB of RAM here; make p smaller")


def check_memory(spec, limit: int | None = None) -> None:
    """Refuse `spec` if its estimate exceeds `limit` bytes (default: this machine's RAM)."""
    limit = physical_ram() if limit is None else limit
    need = estimate(spec)
    if sum(need.values()) > limit:
        parts = ", ".join(f"{k} {v / 2**30:.3g} GiB" for k, v in need.items())
        raise ConfigError(f"the spec needs at least {sum(need.values()) / 2**30:.3g} GiB ({parts}), more than the "
                          f"{limit / 2**30:.3g} GiB of RAM here; make the model or task smaller")
