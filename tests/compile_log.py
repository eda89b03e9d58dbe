"""The programs JAX compiles inside a block, read from its compile log: for tests that a path compiles once."""

import contextlib
import logging

import jax


@contextlib.contextmanager
def compiled(caplog):
    """Yields a list that, when the block ends, holds every `Compiling <name> with ...` line JAX logged in it (one
    per program compiled; a program loaded from the compilation cache is still one)."""
    lines = []
    start = len(caplog.records)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax._src.interpreters.pxla"):
        yield lines
    lines.extend(m for r in caplog.records[start:] if (m := r.getMessage()).startswith("Compiling "))
