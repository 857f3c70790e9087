"""Request statistics shared by worker threads, as many libraries keep them."""

from __future__ import annotations

import threading


class Stats:
    def __init__(self) -> None:
        self.requests = 0

    def record(self) -> None:
        self.requests += 1  # load, add, store: another thread may store in between


class FixedStats(Stats):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def record(self) -> None:
        with self._lock:
            self.requests += 1
