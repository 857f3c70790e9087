"""A counter as libraries write them: ``self.n += 1``, with and without a lock. The module the
bytecode tests name in ``modules=``."""

from __future__ import annotations

import threading


class Hits:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def bump(self) -> None:
        self.n += 1  # load, add, store: one line, three bytecodes

    def locked_bump(self) -> None:
        with self.lock:
            self.n += 1


def never_run() -> int:
    """Not run by any test: a run must not analyse its bytecodes (that cost the cold start tens
    of milliseconds on a large module)."""
    return len(vars(Hits()))
