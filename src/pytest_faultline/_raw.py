"""The real primitives, captured before any test can patch them.

pytest-faultline's own bookkeeping must never go through a patched ``threading.Lock``,
``time.sleep`` or ``time.monotonic`` (the scheduler and the clock replace those during a test),
so internal code takes them from here.
"""

from __future__ import annotations

import _thread
import threading
import time

allocate_lock = _thread.allocate_lock
RLock = _thread.RLock
monotonic = time.monotonic
perf_counter = time.perf_counter
sleep = time.sleep
time_time = time.time
get_ident = threading.get_ident
current_thread = threading.current_thread


class RawEvent:
    """A minimal event on a raw lock, immune to patched ``threading`` primitives."""

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[_thread.LockType] = []
        self._mutex = allocate_lock()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._mutex:
            self._flag = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()

    def wait(self, timeout: float | None = None) -> bool:
        with self._mutex:
            if self._flag:
                return True
            waiter = allocate_lock()
            waiter.acquire()
            self._waiters.append(waiter)
        got = waiter.acquire(True, -1 if timeout is None else max(timeout, 0.0))
        if not got:
            with self._mutex:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return got or self._flag
