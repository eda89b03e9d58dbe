"""SIGINT and SIGTERM during training: the first asks the loop to stop at its next safe point (between chunks,
after any checkpoint in flight is sealed); a second stops the process at once. That is safe too: orbax only renames
a finished checkpoint into place, an unsealed one is not trusted on resume, and a torn metrics line is cut back."""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """`with StopOnSignal() as stop:` ... `if stop.signal: break`. Handlers are installed only in the main thread."""

    def __init__(self, hint: str = ""):
        self.signal: int | None = None
        self.hint = hint
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is None:
            self.signal = signum
            return
        print(f"\ntoymi: second {signal.Signals(signum).name}: stopped at once{self.hint}", file=sys.stderr,
              flush=True)
        os._exit(128 + signum)

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
