"""Checksums for checkpoints: each finished step directory `N/` gets a sibling `N.sha256.json` listing the SHA-256 of
every file in it, written atomically once orbax has finished the save. A step with no such file (its save or seal was
interrupted) or whose files differ is damaged, and is named on load.

A checkpoints directory written before checksums existed has no `CHECKSUMMED` marker: its steps load unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MARKER = "CHECKSUMMED"


def seal_path(step_dir: Path) -> Path:
    return step_dir.with_name(f"{step_dir.name}.sha256.json")


def digests(step_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(step_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(step_dir.rglob("*")) if p.is_file()}


def write_atomically(path: Path, text: str) -> None:
    """`path` holds `text` or its old content, never a mix: a kill mid-write leaves only a `.tmp` file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def seal(step_dir: Path) -> None:
    write_atomically(seal_path(step_dir), json.dumps(digests(step_dir), indent=0))


def problem(step_dir: Path) -> str | None:
    """Why the checkpoint in `step_dir` cannot be trusted, or None if every file matches its checksum."""
    seal_file = seal_path(step_dir)
    if not step_dir.is_dir():
        return f"{step_dir} is missing"
    if not seal_file.exists():
        return f"{step_dir} has no checksum file {seal_file.name} (its save was interrupted)"
    try:
        expected = json.loads(seal_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{seal_file} is unreadable"
    found = digests(step_dir)
    for name, digest in expected.items():
        if name not in found:
            return f"{step_dir / name} is missing"
        if found[name] != digest:
            return f"{step_dir / name} does not match its checksum (damaged)"
    return None
