"""A pytree of arrays kept in a run directory beside a JSON that describes and seals it: what analyses save with a
run so the next command reuses them (trained transcoders, `toymi.circuits.saved_replacement`; SPD decompositions,
`toymi.decompose.parameters.saved`; SPD checkpoints, `toymi.decompose.parameters.resumable`).

Two files per `stem`: `<stem>.<digest>.eqx` (the arrays, Equinox's serialisation, named by the first hex digits of
their SHA-256) and `<stem>.json` (the caller's metadata, the arrays' file name and their whole SHA-256). A save writes
the arrays under their new name, then renames a complete JSON into place — the one step that switches a reader from
the old pair to the new — and only then removes the old arrays. A stop at any moment leaves either pair whole (and at
most an unreferenced arrays file, removed by the next save); arrays whose checksum does not match their JSON (a
damaged file) are never read. Pairs written before the digest was in the name (`<stem>.eqx`) still read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx

_SEAL_KEYS = ("sha256", "arrays")


def write_sealed(directory: str | Path, stem: str, tree: Any, meta: dict) -> Path:
    """Write `tree`'s arrays and `meta` (JSON-able; `sha256` and `arrays` added) as `directory/<stem>.json` and the
    arrays file it names, replacing the pair that was there; returns the directory."""
    if any(key in meta for key in _SEAL_KEYS):
        raise ValueError(f"meta's {_SEAL_KEYS} are the seal this function writes")
    where = Path(directory)
    where.mkdir(parents=True, exist_ok=True)
    tmp = where / f"{stem}.eqx.tmp"
    eqx.tree_serialise_leaves(tmp, tree)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    arrays = f"{stem}.{digest[:16]}.eqx"
    os.replace(tmp, where / arrays)
    tmp = where / f"{stem}.json.tmp"
    tmp.write_text(json.dumps({**meta, "sha256": digest, "arrays": arrays}, indent=1))
    os.replace(tmp, where / f"{stem}.json")  # the commit: from here on a reader gets the new pair
    for old in _arrays_files(where, stem):
        if old.name != arrays:
            old.unlink(missing_ok=True)
    return where


def read_sealed(directory: str | Path, stem: str, accept: Callable[[dict], bool],
                like: Callable[[dict], Any]) -> tuple[Any, dict] | None:
    """`(tree, meta)` saved by `write_sealed` if its JSON reads, `accept(meta)` holds and the arrays are the ones it
    seals (`like(meta)`: a pytree of the saved structure, e.g. from `eqx.filter_eval_shape`); else None."""
    where = Path(directory)
    try:
        meta = json.loads((where / f"{stem}.json").read_text())
        data = sealed_arrays(where, stem, meta).read_bytes()
    except (OSError, ValueError):
        return None  # none saved, or a save that never finished
    if not accept(meta) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return None
    return eqx.tree_deserialise_leaves(io.BytesIO(data), like(meta)), meta  # the bytes checked, not a second read


def sealed_arrays(directory: str | Path, stem: str, meta: dict | None = None) -> Path:
    """The arrays file that `directory/<stem>.json` (or its already-read `meta`) names; ValueError where the JSON
    is not a sealed pair's or names a file that is not this pair's arrays."""
    where = Path(directory)
    meta = json.loads((where / f"{stem}.json").read_text()) if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError(f"{where / stem}.json is not a sealed pair's JSON")
    name = meta.get("arrays", f"{stem}.eqx")
    if not isinstance(name, str) or not _arrays_name(stem).fullmatch(name):
        raise ValueError(f"{where / stem}.json names arrays {name!r}, not a file of this pair")
    return where / name


def remove_sealed(directory: str | Path, stem: str) -> None:
    """Remove `directory/<stem>`'s pair: the JSON first, so that no moment leaves a JSON without its arrays."""
    where = Path(directory)
    (where / f"{stem}.json").unlink(missing_ok=True)
    for old in _arrays_files(where, stem):
        old.unlink(missing_ok=True)


def _arrays_name(stem: str) -> re.Pattern:
    """The one naming rule of `stem`'s arrays files: `<stem>.<16 hex digits>.eqx` (`write_sealed`), and `<stem>.eqx`
    from older saves."""
    return re.compile(rf"{re.escape(stem)}(\.[0-9a-f]{{16}})?\.eqx")


def _arrays_files(where: Path, stem: str) -> list[Path]:
    """Every arrays file of `stem` in `where`."""
    name = _arrays_name(stem)
    return [path for path in where.glob(f"{stem}.*eqx") if name.fullmatch(path.name)]


def kept_for(format: int, model_step: int, settings: dict | None = None) -> Callable[[dict], bool]:
    """`read_sealed`'s `accept` for what a run keeps for one model step: the saver's `format`, that `model_step`, and
    `settings` where given (any otherwise)."""
    return lambda meta: (meta.get("format") == format and meta.get("model_step") == model_step
                         and (settings is None or meta.get("settings") == settings))
