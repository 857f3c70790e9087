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
# Starting and joining the plugin's own threads (the body of an explored run).
thread_start = threading.Thread.start
thread_join = threading.Thread.join


def forget_dummy_thread() -> None:
    """Drop the calling raw thread's ``threading._DummyThread`` entry, as it is about to end.

    ``threading.current_thread()`` in a thread started with ``_thread.start_new_thread`` registers
    a dummy ``Thread`` that Python before 3.13 never removes: the ended thread stays listed in
    ``threading.enumerate()`` and fails users' thread-leak checks. Call it last in the thread.
    """
    active = getattr(threading, "_active", None)
    lock = getattr(threading, "_active_limbo_lock", None)
    dummy = getattr(threading, "_DummyThread", None)
    if not isinstance(active, dict) or lock is None or dummy is None:
        return  # another Python: nothing we know how to tidy
    ident = get_ident()
    with lock:
        if isinstance(active.get(ident), dummy):
            del active[ident]


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


# One set of bounds. Every wait of the plugin is bounded; these are the bounds, in seconds.
WAIT_BOUND_S = 10.0  # a user's wait() on an arming, a socket fault or a deferral
STALL_BOUND_S = 10.0  # a Stall or a stalled read that nobody releases goes on after this
CALL_BOUND_S = 10.0  # a call into a helper thread (proxy, clock) that takes longer is a bug
JOIN_BOUND_S = 5.0  # joining a helper thread at teardown
PARK_BOUND_S = 30.0  # a parked (deferred) call runs anyway after this long, recorded


class CountLatch:
    """Counts arrivals; ``wait(n, timeout)`` blocks until ``n`` arrived in all (False on timeout).

    The one bounded latch behind every ``wait(n=1, timeout=...)`` of the public API (armings,
    socket faults, deferrals); built on raw locks, so it works while primitives are patched.
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._count = 0
        self._waiters: list[tuple[int, RawEvent]] = []

    @property
    def count(self) -> int:
        return self._count

    def arrive(self, n: int = 1) -> int:
        """Count ``n`` more arrivals; wake the waiters whose number is reached. Returns the new
        count."""
        with self._lock:
            self._count += n
            count = self._count
            ready = [ev for need, ev in self._waiters if count >= need]
            self._waiters = [(need, ev) for need, ev in self._waiters if count < need]
        for ev in ready:
            ev.set()
        return count

    def wait(self, n: int = 1, timeout: float = WAIT_BOUND_S) -> bool:
        """Block until ``n`` arrivals in all; False if ``timeout`` seconds pass first."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"wait(n=...) needs a whole number >= 1, got {n!r}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(f"wait(timeout=...) needs seconds >= 0, got {timeout!r}")
        with self._lock:
            if self._count >= n:
                return True
            ev = RawEvent()
            self._waiters.append((n, ev))
        return ev.wait(timeout)
