"""A lazily opened connection, shared by threads through a plain attribute."""

from __future__ import annotations

import threading


class Cache:
    def __init__(self):
        self.conn = None
        self.opened = 0

    def connection(self):
        if self.conn is None:  # the bug: two threads can both see None
            self.opened += 1
            self.conn = object()
        return self.conn


class FixedCache(Cache):
    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def connection(self):
        with self._lock:
            return super().connection()
