"""Owning a run directory while writing it: a lock against a second writer, and a marker for an unfinished start.

- `RUN_DIR/.toymi.lock` is held with `fcntl.flock` by the one process writing the run (its pid inside, for the
  message a second writer gets). The kernel drops the lock when the process dies, so a killed run never blocks the
  next one; the file is removed when the writer finishes.
- `RUN_DIR/.toymi.unfinished` exists from the moment a new run directory is made until its `spec.toml` and first
  checkpoint are complete. A directory that still has it holds no work: the next `train` (or `--resume`) clears
  toymi's own files from it and starts again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import jax

from toymi.errors import RunDirectoryError

LOCK = ".toymi.lock"
UNFINISHED = ".toymi.unfinished"
# What a start writes; an unfinished directory holding anything else is left alone.
OWN_FILES = frozenset({LOCK, UNFINISHED, "spec.toml", "sweep.toml", "members.json", "metrics.jsonl",
                       "metrics.jsonl.tmp", "checkpoints", "figures"})


def is_unfinished(run_dir: Path) -> bool:
    """Marked unfinished, or holding at most a lock file, or not made yet (a start killed before it could write its
    marker): a `--resume` of it starts the run."""
    if (run_dir / UNFINISHED).exists():
        return True
    return not run_dir.exists() or (run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK})


def holds_work(run_dir: Path) -> bool:
    """Whether `run_dir` holds anything a new run must not overwrite."""
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is a file, not a run directory; pass --out a directory")
    names = {p.name for p in run_dir.iterdir()} - {LOCK}
    return bool(names) and not (UNFINISHED in names and names <= OWN_FILES)


@contextlib.contextmanager
def locked(run_dir: Path):
    """Hold `run_dir`'s lock (made if needed) for the `with` block; refuse if another live process holds it."""
    if jax.process_index() != 0:  # multi-host: process 0 owns the directory
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    while True:
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirectoryError(f"{run_dir} is being written by another process (pid {holder}); wait for it "
                                    "or stop it") from None
        # the holder may have removed the file between our open and flock: lock the file that is there now
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def clear_unfinished(run_dir: Path) -> None:
    """Remove what an interrupted start left (only toymi's own files; `holds_work` has checked there is nothing
    else), keeping the lock."""
    for name in OWN_FILES - {LOCK, UNFINISHED}:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def begin(run_dir: Path) -> None:
    if jax.process_index() == 0:
        (run_dir / UNFINISHED).touch()


def finish_start(run_dir: Path) -> None:
    if jax.process_index() == 0:
        (run_dir / UNFINISHED).unlink(missing_ok=True)
