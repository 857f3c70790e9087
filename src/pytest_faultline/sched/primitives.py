"""Stand-ins for ``threading``'s primitives that make every operation a scheduling point.

They behave like the originals. Used from a managed thread, waiting means telling the scheduler
what would let the thread go on (a predicate) and letting another thread run; timeouts are
virtual. Used from any other thread (an unmanaged one, or after the run ended) they fall back to
real blocking: ``Lock`` on a real lock, ``Event`` and ``Condition`` on real waiter locks, the rest
by polling. Their state is shared by both kinds of thread, so every change of it happens under a
raw mutex and never across a scheduling point.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _raw
from .runtime import ThreadRecord, current, note_foreign

__all__ = [
    "ManagedBarrier",
    "ManagedBoundedSemaphore",
    "ManagedCondition",
    "ManagedEvent",
    "ManagedLock",
    "ManagedRLock",
    "ManagedSemaphore",
]

T = TypeVar("T")
POLL_MAX_S = 0.002


def _name(obj: object, prefix: str) -> None:
    ctx = current()
    if ctx is not None:
        ctx[0].name_resource(obj, prefix)
    else:
        obj._fl_name = None  # type: ignore[attr-defined]
        obj._fl_site = "?"  # type: ignore[attr-defined]


def _poll(pred: Callable[[], bool], timeout: float | None) -> bool:
    """Wait in real time for ``pred`` (unmanaged threads on primitives without a real lock)."""
    end = None if timeout is None else _raw.monotonic() + timeout
    pause = 0.00005
    while not pred():
        if end is not None and _raw.monotonic() >= end:
            return pred()
        _raw.sleep(pause)
        pause = min(pause * 2, POLL_MAX_S)
    return True


def _check_acquire_args(blocking: bool, timeout: float) -> None:
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")


class ManagedLock:
    """``threading.Lock`` under the scheduler."""

    _fl_prefix = "L"

    def __init__(self) -> None:
        self._real = _raw.allocate_lock()
        self._owner: ThreadRecord | None = None
        _name(self, self._fl_prefix)

    def __repr__(self) -> str:
        state = "locked" if self._real.locked() else "unlocked"
        return f"<faultline {type(self).__name__[7:]} {self._fl_name or ''} {state}>"  # type: ignore[attr-defined]

    def holders(self) -> list[ThreadRecord]:
        return [self._owner] if self._owner is not None and self._real.locked() else []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        _check_acquire_args(blocking, timeout)
        ctx = current()
        if ctx is None:
            note_foreign()
            got = self._real.acquire(blocking, timeout)
            if got:
                self._owner = None
            return bool(got)
        sched, me = ctx
        sched.point(me, "acquire", self)
        if self._real.acquire(False):
            self._owner = me
            return True
        if not blocking or timeout == 0:
            return False
        wait = None if timeout < 0 else float(timeout)
        free = self._free
        while True:
            satisfied = sched.block(me, "acquire", self, free, wait)
            if self._real.acquire(False):
                self._owner = me
                return True
            if not satisfied:
                return False

    def _free(self) -> bool:
        return not self._real.locked()

    __enter__ = acquire

    def release(self) -> None:
        self._real.release()  # raises RuntimeError like the original when unlocked
        self._owner = None
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "release", self)

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._real.locked()

    # The deprecated aliases of ``_thread.lock``.
    def acquire_lock(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.acquire(blocking, timeout)

    def release_lock(self) -> None:
        self.release()

    def locked_lock(self) -> bool:
        return self.locked()

    def _at_fork_reinit(self) -> None:
        """After ``fork()`` in the child: unlocked, owned by nobody (``os.register_at_fork``
        users such as ``concurrent.futures`` and ``logging`` call it)."""
        self._real = _raw.allocate_lock()
        self._owner = None

    # Condition protocol: a plain lock counts as owned when it is locked at all.
    def _is_owned(self) -> bool:
        return self._real.locked()

    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, state: object) -> None:
        self.acquire()


class ManagedRLock(ManagedLock):
    """``threading.RLock`` under the scheduler."""

    _fl_prefix = "R"

    def __init__(self) -> None:
        super().__init__()
        self._owner_ident: int | None = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = _raw.get_ident()
        if self._owner_ident == me:
            self._count += 1
            return True
        if not super().acquire(blocking, timeout):
            return False
        self._owner_ident = me
        self._count = 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        if self._owner_ident != _raw.get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._owner_ident = None
            super().release()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self._owner_ident == _raw.get_ident()

    def _recursion_count(self) -> int:
        return self._count if self._is_owned() else 0

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self._owner_ident = None
        self._count = 0

    def _release_save(self) -> Any:
        if not self._is_owned():
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 1
        self.release()
        return count

    def _acquire_restore(self, state: Any) -> None:
        self.acquire()
        self._count = int(state)


class _Waiter:
    __slots__ = ("lock", "notified")

    def __init__(self, managed: bool) -> None:
        self.notified = False
        self.lock: Any = None
        if not managed:
            self.lock = _raw.allocate_lock()
            self.lock.acquire()

    def wake(self) -> None:
        self.notified = True
        if self.lock is not None:
            self.lock.release()

    def is_notified(self) -> bool:
        return self.notified

    def wait_unmanaged(self, timeout: float | None) -> bool:
        self.lock.acquire(True, -1 if timeout is None else max(timeout, 0.0))
        return self.notified


class ManagedCondition:
    """``threading.Condition`` under the scheduler. A wait that no notify can end is reported
    as a lost wakeup when every other thread is blocked too."""

    def __init__(self, lock: Any = None) -> None:
        self._lock = ManagedRLock() if lock is None else lock
        self._mutex = _raw.allocate_lock()
        self._waiters: deque[_Waiter] = deque()
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        _name(self, "C")

    def __repr__(self) -> str:
        return f"<faultline Condition {self._fl_name or ''} ({len(self._waiters)} waiters)>"  # type: ignore[attr-defined]

    def holders(self) -> list[ThreadRecord]:
        return []

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def _is_owned(self) -> bool:
        if hasattr(self._lock, "_is_owned"):
            return bool(self._lock._is_owned())
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        if hasattr(self._lock, "_release_save"):
            return self._lock._release_save()
        self._lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        if hasattr(self._lock, "_acquire_restore"):
            self._lock._acquire_restore(state)
        else:
            self._lock.acquire()

    def _at_fork_reinit(self) -> None:
        reinit = getattr(self._lock, "_at_fork_reinit", None)
        if reinit is not None:
            reinit()
        self._mutex = _raw.allocate_lock()
        self._waiters.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        ctx = current()
        waiter = _Waiter(managed=ctx is not None)
        with self._mutex:
            self._waiters.append(waiter)
        saved = self._release_save()
        try:
            if ctx is None:
                note_foreign()
                return waiter.wait_unmanaged(timeout)
            return ctx[0].block(ctx[1], "wait", self, waiter.is_notified, timeout)
        finally:
            with self._mutex:
                if not waiter.notified:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
            self._acquire_restore(saved)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        import time  # patched during a run: virtual for managed threads

        end = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            wait = None
            if end is not None:
                wait = end - time.monotonic()
                if wait <= 0:
                    break
            self.wait(wait)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._mutex:
            woken = [self._waiters.popleft() for _ in range(min(n, len(self._waiters)))]
        for waiter in woken:
            waiter.wake()
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "notify", self)

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all


class ManagedSemaphore:
    """``threading.Semaphore`` under the scheduler."""

    _fl_prefix = "S"

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._mutex = _raw.allocate_lock()
        _name(self, self._fl_prefix)

    def __repr__(self) -> str:
        return f"<faultline {type(self).__name__[7:]} {self._fl_name or ''} value={self._value}>"  # type: ignore[attr-defined]

    def holders(self) -> list[ThreadRecord]:
        return []

    def _take(self) -> bool:
        with self._mutex:
            if self._value > 0:
                self._value -= 1
                return True
            return False

    def _available(self) -> bool:
        return self._value > 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        ctx = current()
        if ctx is None:
            note_foreign()
            if self._take():
                return True
            if not blocking:
                return False
            end = None if timeout is None else _raw.monotonic() + timeout
            while True:
                left = None if end is None else end - _raw.monotonic()
                if not _poll(self._available, left):
                    return False
                if self._take():
                    return True
        sched, me = ctx
        sched.point(me, "acquire", self)
        if self._take():
            return True
        if not blocking:
            return False
        while True:
            satisfied = sched.block(me, "acquire", self, self._available, timeout)
            if self._take():
                return True
            if not satisfied:
                return False

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        with self._mutex:
            self._value += n
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "release", self)

    def __exit__(self, *exc: object) -> None:
        self.release()


class ManagedBoundedSemaphore(ManagedSemaphore):
    """``threading.BoundedSemaphore`` under the scheduler."""

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial_value = value

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        with self._mutex:
            if self._value + n > self._initial_value:
                raise ValueError("Semaphore released too many times")
            self._value += n
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "release", self)


class ManagedEvent:
    """``threading.Event`` under the scheduler."""

    def __init__(self) -> None:
        self._flag = False
        self._mutex = _raw.allocate_lock()
        self._waiters: list[_Waiter] = []
        _name(self, "E")

    def __repr__(self) -> str:
        return f"<faultline Event {self._fl_name or ''} {'set' if self._flag else 'unset'}>"  # type: ignore[attr-defined]

    def holders(self) -> list[ThreadRecord]:
        return []

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with self._mutex:
            self._flag = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.wake()
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "set", self)

    def clear(self) -> None:
        with self._mutex:
            self._flag = False

    def _at_fork_reinit(self) -> None:
        self._mutex = _raw.allocate_lock()
        self._waiters = []

    def _is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        ctx = current()
        if ctx is None:
            note_foreign()
            with self._mutex:
                if self._flag:
                    return True
                waiter = _Waiter(managed=False)
                self._waiters.append(waiter)
            got = waiter.wait_unmanaged(timeout)
            with self._mutex:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            return got or self._flag
        sched, me = ctx
        sched.point(me, "wait", self)
        if self._flag:
            return True
        return sched.block(me, "wait", self, self._is_set, timeout)


class ManagedBarrier:
    """``threading.Barrier`` under the scheduler."""

    def __init__(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be > 0")
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._count = 0
        self._generation = 0
        self._broken = False
        self._reset_generations: set[int] = set()
        self._mutex = _raw.allocate_lock()
        _name(self, "B")

    def holders(self) -> list[ThreadRecord]:
        return []

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        return self._count

    @property
    def broken(self) -> bool:
        return self._broken

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            timeout = self._timeout
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "wait", self)
        else:
            note_foreign()
        with self._mutex:
            if self._broken:
                raise threading.BrokenBarrierError
            generation = self._generation
            index = self._count
            self._count += 1
            last = self._count == self._parties
        if last:
            try:
                if self._action is not None:
                    self._action()
            except BaseException:
                self.abort()
                raise
            with self._mutex:
                self._count = 0
                self._generation += 1
            return index

        def passed() -> bool:
            return self._generation != generation or self._broken

        if ctx is None:
            ok = _poll(passed, timeout)
        else:
            ok = ctx[0].block(ctx[1], "wait", self, passed, timeout)
        with self._mutex:
            if generation in self._reset_generations:
                raise threading.BrokenBarrierError
            if self._generation != generation:
                return index
            if not ok:
                self._broken = True
            raise threading.BrokenBarrierError

    def reset(self) -> None:
        with self._mutex:
            if self._count:
                # The threads waiting in this generation get BrokenBarrierError.
                self._reset_generations.add(self._generation)
                self._generation += 1
            self._count = 0
            self._broken = False

    def abort(self) -> None:
        with self._mutex:
            self._broken = True
