"""Tracked locks: what ``threading.Lock()`` and ``threading.RLock()`` return while a lock-order
watcher is active.

A tracked lock wraps the lock the previous factory made (the real one, or the thread
scheduler's) and keeps, per thread, the list of locks that thread holds. The uncontended path
only appends to and removes from that list and remembers the acquiring frame; the graph work
happens only when a thread takes a lock while already holding one, and then only for an edge
not seen before.
"""

from __future__ import annotations

import _thread
import itertools
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import _sites
from .._sites import RECHAIN

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "Installation",
    "LockSink",
    "TrackedLock",
    "TrackedRLock",
    "active_sinks",
]


__tracebackhide__ = True  # pytest leaves this module's frames out of failure tracebacks

_getframe = sys._getframe
_serials = itertools.count(1)


class _ThreadState(_thread._local):
    """Per thread: ``held``, the tracked locks it holds (oldest first); ``busy`` while our own
    bookkeeping runs; ``creating`` while a factory makes a lock. ``__init__`` runs once in each
    thread on first use, so the hot path needs no existence check."""

    def __init__(self) -> None:
        self.held: list[TrackedLock] = []
        self.busy = False
        self.creating = False


_tls = _ThreadState()


class LockSink(Protocol):
    """What watches tracked locks (a lock-order graph)."""

    def blocking(self, lock: TrackedLock, held: list[TrackedLock]) -> Exception | None: ...

    def trylock(self, lock: TrackedLock, held: list[TrackedLock]) -> None: ...


# Replaced, never mutated, so a thread iterating it needs no lock.
_sinks: tuple[LockSink, ...] = ()


def active_sinks() -> tuple[LockSink, ...]:
    return _sinks


def add_sink(sink: LockSink) -> None:
    global _sinks
    _sinks = (*_sinks, sink)


def remove_sink(sink: LockSink) -> None:
    global _sinks
    _sinks = tuple(s for s in _sinks if s is not sink)


def _blocking(lock: TrackedLock, held: list[TrackedLock]) -> None:
    """A blocking acquire while holding locks: let every sink add its edges (may raise)."""
    sinks = _sinks
    if not sinks or _tls.busy:
        return
    _tls.busy = True  # our own bookkeeping may make or take locks (e.g. a _DummyThread's)
    error: Exception | None = None
    try:
        for sink in sinks:
            error = sink.blocking(lock, held) or error
    finally:
        _tls.busy = False
    if error is not None:
        raise error


def _trylock(lock: TrackedLock, held: list[TrackedLock]) -> None:
    sinks = _sinks
    if not sinks or _tls.busy:
        return
    _tls.busy = True
    try:
        for sink in sinks:
            sink.trylock(lock, held)
    finally:
        _tls.busy = False


class TrackedLock:
    """A ``threading.Lock`` whose acquisitions are watched for lock-order inversions.

    Behaves as the lock it wraps (``acquire``, ``release``, ``locked``, context manager). The
    extra attributes are for reports: ``lock_class`` (where it was made) and ``serial``.
    """

    __slots__ = (
        "__weakref__",
        "_acq",
        "_back_lasti",
        "_holder",
        "_inner",
        "_lasti",
        "_rel",
        "_site",
        "lock_class",
        "ordinal",
        "serial",
    )

    def __init__(self, inner: Any, lock_class: _sites.LockClass, ordinal: int) -> None:
        self._inner = inner
        self._acq = inner.acquire
        self._rel = inner.release
        self._holder: list[TrackedLock] | None = None
        self._site: FrameType | None = None
        self._lasti = -1
        self._back_lasti = -1
        self.lock_class = lock_class
        self.serial = next(_serials)
        self.ordinal = ordinal

    # The hot paths below are written out in full (no shared helper) because every Python call
    # costs as much as the lock itself; see benchmarks/bench_lockorder.py.

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        held = _tls.held
        if blocking:
            if held:
                _blocking(self, held)
            if timeout == -1:
                self._acq()  # no arguments: the C call parses none, which is measurably faster
            elif not self._acq(True, timeout):
                return False
        else:
            if not self._acq(False, timeout):  # the lock's own error for a timeout here
                return False
            if held:
                _trylock(self, held)
        frame = _getframe(1)
        self._site = frame
        self._lasti = frame.f_lasti
        back = frame.f_back
        self._back_lasti = -1 if back is None else back.f_lasti
        self._holder = held
        held.append(self)
        return True

    def __enter__(self) -> bool:
        held = _tls.held
        if held:
            _blocking(self, held)
        self._acq()
        frame = _getframe(1)
        self._site = frame
        self._lasti = frame.f_lasti
        back = frame.f_back
        self._back_lasti = -1 if back is None else back.f_lasti
        self._holder = held
        held.append(self)
        return True

    def release(self) -> None:
        holder = self._holder
        if holder is not None:
            # Set before the real release: the next owner writes its own list here.
            self._holder = None
            self._site = None
            holder.remove(self)  # may be another thread's list: a Lock can be released anywhere
        self._rel()

    def __exit__(self, *exc: object) -> None:
        holder = self._holder
        if holder is not None:
            self._holder = None
            self._site = None
            holder.remove(self)
        self._rel()

    def locked(self) -> bool:
        return bool(self._inner.locked())

    def _is_owned(self) -> bool:
        inner_is_owned = getattr(self._inner, "_is_owned", None)
        if inner_is_owned is not None:
            return bool(inner_is_owned())
        # Condition's own fallback for a plain lock, without our try-lock bookkeeping.
        if self._inner.acquire(False):
            self._inner.release()
            return False
        return True

    def _at_fork_reinit(self) -> None:
        self._inner._at_fork_reinit()
        self._holder = None
        self._site = None

    @property
    def name(self) -> str:
        """The lock's class name and, when its class has several locks, which one it is."""
        return _sites.lock_name(self.lock_class.name, self.lock_class.kind, self.ordinal)

    def acquired_stack(self) -> tuple[_sites.Frame, ...]:
        """Where the current holder took this lock (empty when it is not held)."""
        site = self._site
        if site is None:
            return ()
        return _sites.stack_at(site, self._lasti, self._back_lasti)

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} tracked {self.lock_class.kind} {self.name} at {self.lock_class.site}>"


class TrackedRLock(TrackedLock):
    """A ``threading.RLock`` watched for lock-order inversions; reentry adds no edge.

    The owner is the thread whose held list ``_holder`` is: one identity test, no thread-id call.
    """

    __slots__ = ("_count",)

    def __init__(self, inner: Any, lock_class: _sites.LockClass, ordinal: int) -> None:
        super().__init__(inner, lock_class, ordinal)
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        held = _tls.held
        if self._holder is held:
            if not self._acq(blocking, timeout):
                return False
            self._count += 1
            return True
        if blocking:
            if held:
                _blocking(self, held)
            if timeout == -1:
                self._acq()  # no arguments: the C call parses none, which is measurably faster
            elif not self._acq(True, timeout):
                return False
        else:
            if not self._acq(False, timeout):  # the lock's own error for a timeout here
                return False
            if held:
                _trylock(self, held)
        frame = _getframe(1)
        self._site = frame
        self._lasti = frame.f_lasti
        back = frame.f_back
        self._back_lasti = -1 if back is None else back.f_lasti
        self._count = 1
        self._holder = held
        held.append(self)
        return True

    def __enter__(self) -> bool:
        held = _tls.held
        if self._holder is held:
            self._acq()
            self._count += 1
            return True
        if held:
            _blocking(self, held)
        self._acq()
        frame = _getframe(1)
        self._site = frame
        self._lasti = frame.f_lasti
        back = frame.f_back
        self._back_lasti = -1 if back is None else back.f_lasti
        self._count = 1
        self._holder = held
        held.append(self)
        return True

    def release(self) -> None:
        held = _tls.held
        if self._holder is held:
            self._count -= 1
            if not self._count:
                self._holder = None
                self._site = None
                held.remove(self)
        self._rel()  # raises the RLock's own error when this thread does not own it

    def __exit__(self, *exc: object) -> None:
        held = _tls.held
        if self._holder is held:
            self._count -= 1
            if not self._count:
                self._holder = None
                self._site = None
                held.remove(self)
        self._rel()

    def locked(self) -> bool:
        inner_locked = getattr(self._inner, "locked", None)
        return bool(inner_locked()) if inner_locked is not None else self._holder is not None

    def _is_owned(self) -> bool:
        return self._holder is _tls.held

    # Condition.wait releases an RLock fully, whatever its depth, and restores it afterwards.

    def _release_save(self) -> tuple[Any, int]:
        held = _tls.held
        if self._holder is not held:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 0
        self._holder = None
        self._site = None
        held.remove(self)
        saver = getattr(self._inner, "_release_save", None)
        if saver is not None:
            return saver(), count
        for _ in range(count):
            self._rel()
        return None, count

    def _acquire_restore(self, saved: tuple[Any, int]) -> None:
        state, count = saved
        held = _tls.held
        if held:
            _blocking(self, held)
        restorer = getattr(self._inner, "_acquire_restore", None)
        if restorer is not None:
            restorer(state)
        else:
            for _ in range(count):
                self._acq()
        frame = _getframe(1)
        self._site = frame
        self._lasti = frame.f_lasti
        back = frame.f_back
        self._back_lasti = -1 if back is None else back.f_lasti
        self._count = count
        self._holder = held
        held.append(self)

    def _recursion_count(self) -> int:
        return self._count if self._holder is _tls.held else 0


def held_locks() -> list[TrackedLock]:
    """The tracked locks the calling thread holds, oldest first."""
    return list(_tls.held)


class Installation:
    """``threading.Lock``/``RLock`` replaced by factories of tracked locks, chained to what
    was there, until :meth:`restore` puts exactly that back."""

    def __init__(self) -> None:
        self.previous_lock: Callable[..., Any] = threading.Lock
        self.previous_rlock: Callable[..., Any] = threading.RLock
        self._ordinals: dict[_sites.LockClass, itertools.count[int]] = {}
        self.lock_factory = self._factory(self.previous_lock, TrackedLock, "Lock")
        self.rlock_factory = self._factory(self.previous_rlock, TrackedRLock, "RLock")
        threading.Lock = self.lock_factory  # type: ignore[misc,assignment,unused-ignore]
        threading.RLock = self.rlock_factory  # type: ignore[misc,assignment,unused-ignore]

    def _factory(
        self, previous: Callable[..., Any], tracked: type[TrackedLock], kind: str
    ) -> Callable[..., Any]:
        ordinals = self._ordinals

        def factory(*args: Any, **kwargs: Any) -> Any:
            if _tls.creating:
                # A factory under ours (another layer chaining back to a tracked factory):
                # one wrapper per lock is enough.
                return previous(*args, **kwargs)
            _tls.creating = True
            try:
                inner = previous(*args, **kwargs)
            finally:
                _tls.creating = False
            if isinstance(inner, TrackedLock):
                return inner
            lock_class = _sites.lock_class_here(kind, 1)
            counter = ordinals.get(lock_class)
            if counter is None:
                counter = ordinals.setdefault(lock_class, itertools.count(1))
            return tracked(inner, lock_class, next(counter))

        factory.__name__ = factory.__qualname__ = kind
        factory.__doc__ = f"threading.{kind}, tracked by pytest-faultline's lock-order watcher"
        # For a layer that replaces threading.Lock/RLock while we are installed (the thread
        # scheduler, per run): ``getattr(threading.Lock, RECHAIN, None)`` gives a function
        # turning its own stand-in into a factory of tracked locks around the stand-in's.
        setattr(factory, RECHAIN, lambda stand_in: self._factory(stand_in, tracked, kind))
        return factory

    def restore(self) -> None:
        threading.Lock = self.previous_lock  # type: ignore[misc,assignment,unused-ignore]
        threading.RLock = self.previous_rlock  # type: ignore[misc,assignment,unused-ignore]
