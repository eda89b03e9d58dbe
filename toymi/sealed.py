"""A pytree of arrays kept in a run directory beside a JSON that describes and seals it: what analyses save with a
run so the next command reuses them (trained transcoders, `toymi.circuits.saved_replacement`; SPD decompositions,
`toymi.decompose.parameters.saved`).

Two files per `stem`: `<stem>.eqx` (the arrays, Equinox's serialisation) and `<stem>.json` (the caller's metadata
plus the SHA-256 of the arrays). Each is written to a temporary name and renamed into place, the JSON last, so a
reader sees either the old pair or the new one; arrays whose checksum does not match their JSON (an interrupted
save, a damaged file) are never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx


def write_sealed(directory: str | Path, stem: str, tree: Any, meta: dict) -> Path:
    """Write `tree`'s arrays and `meta` (JSON-able, with `sha256` added) as `directory/<stem>.{eqx,json}`,
    replacing what was there; returns the directory."""
    if "sha256" in meta:
        raise ValueError("meta's 'sha256' is the seal this function writes")
    where = Path(directory)
    where.mkdir(parents=True, exist_ok=True)
    arrays = where / f"{stem}.eqx"
    tmp = where / f"{stem}.eqx.tmp"
    eqx.tree_serialise_leaves(tmp, tree)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, arrays)
    tmp = where / f"{stem}.json.tmp"
    tmp.write_text(json.dumps({**meta, "sha256": digest}, indent=1))
    os.replace(tmp, where / f"{stem}.json")
    return where


def read_sealed(directory: str | Path, stem: str, accept: Callable[[dict], bool],
                like: Callable[[dict], Any]) -> tuple[Any, dict] | None:
    """`(tree, meta)` saved by `write_sealed` if its JSON reads, `accept(meta)` holds and the arrays are the ones it
    seals (`like(meta)`: a pytree of the saved structure, e.g. from `eqx.filter_eval_shape`); else None."""
    where = Path(directory)
    try:
        meta = json.loads((where / f"{stem}.json").read_text())
        data = (where / f"{stem}.eqx").read_bytes()
    except (OSError, ValueError):
        return None  # none saved, or a save that never finished
    if not isinstance(meta, dict) or not accept(meta) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return None
    return eqx.tree_deserialise_leaves(io.BytesIO(data), like(meta)), meta  # the bytes checked, not a second read


def kept_for(format: int, model_step: int, settings: dict | None = None) -> Callable[[dict], bool]:
    """`read_sealed`'s `accept` for what a run keeps for one model step: the saver's `format`, that `model_step`, and
    `settings` where given (any otherwise)."""
    return lambda meta: (meta.get("format") == format and meta.get("model_step") == model_step
                         and (settings is None or meta.get("settings") == settings))
