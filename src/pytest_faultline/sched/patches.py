"""What a run patches: ``threading``'s primitives, ``Thread.start``/``join``, ``queue``, ``time``.

Installed when a run starts and removed when it ends, also when it fails. Unmanaged threads that
call a patched name during the run get the original behaviour (real locks, real time).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import _raw
from .integration import chained_stand_in
from .io import IO_PATCHES
from .primitives import (
    ManagedBarrier,
    ManagedBoundedSemaphore,
    ManagedCondition,
    ManagedEvent,
    ManagedLock,
    ManagedRLock,
    ManagedSemaphore,
)
from .queues import ManagedSimpleQueue
from .runtime import DONE, Scheduler, current

__all__ = ["ORIGINAL_JOIN", "ORIGINAL_START", "PatchSet", "restore_originals"]

JOIN_BOUND_S = _raw.JOIN_BOUND_S

ORIGINAL_START = threading.Thread.start
ORIGINAL_JOIN = threading.Thread.join
_ORIGINAL_SLEEP = time.sleep


def managed_start(self: threading.Thread) -> None:
    """``Thread.start`` while a run is active: a thread started by a managed thread is managed."""
    ctx = current()
    if ctx is None:
        ORIGINAL_START(self)
        return
    sched, me = ctx
    if not getattr(self, "_initialized", False):
        raise RuntimeError("thread.__init__() not called")
    if self._started.is_set():  # type: ignore[attr-defined]
        raise RuntimeError("threads can only be started once")
    rec = sched.new_thread(self)
    # Thread.start waits on _started, which the new thread sets before it is managed: a raw
    # event keeps that handshake out of the scheduler.
    self._started = _raw.RawEvent()  # type: ignore[attr-defined]
    user_run = self.run

    def run() -> None:
        exc: BaseException | None = None
        hook = sched.line_hook
        try:
            sched.enter(rec)
            if hook is not None:
                hook.thread_enter()
            user_run()
        except BaseException as caught:
            exc = caught
        finally:
            if hook is not None:
                hook.thread_exit()
            with contextlib.suppress(AttributeError):
                del self.run
            sched.exit(rec, exc)

    self.run = run  # type: ignore[method-assign]
    try:
        ORIGINAL_START(self)
    except BaseException:
        rec.state = DONE
        raise
    sched.point(me, f"start {rec.label}")


def managed_join(self: threading.Thread, timeout: float | None = None) -> None:
    """``Thread.join`` while a run is active: waiting for a managed thread is a scheduler wait."""
    ctx = current()
    if ctx is None:
        ORIGINAL_JOIN(self, timeout)
        return
    sched, me = ctx
    rec = sched.record_of(self)
    if rec is None:  # a thread started outside the run: a real join
        ORIGINAL_JOIN(self, timeout)
        return
    if rec is me:
        raise RuntimeError("cannot join current thread")
    sched.point(me, f"join {rec.label}")
    if rec.state != DONE:
        sched.block(me, "join", rec, lambda: rec.state == DONE, timeout)
    if rec.state == DONE:
        ORIGINAL_JOIN(self, JOIN_BOUND_S)  # the thread has left the scheduler and is ending


def managed_sleep(seconds: float) -> None:
    ctx = current()
    if ctx is None:
        _ORIGINAL_SLEEP(seconds)
        return
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    ctx[0].sleep(ctx[1], float(seconds))


def _clock_function(
    managed: Callable[[Scheduler], float], previous: Callable[[], Any], scale: float = 1.0
) -> Callable[[], Any]:
    """A time function: the run's virtual reading in managed threads, ``previous`` (the real
    clock, or the test's frozen clock) in any other thread."""

    def read() -> Any:
        ctx = current()
        if ctx is None:
            return previous()
        value = managed(ctx[0])
        return int(value * scale) if scale != 1.0 else value

    read.__name__ = getattr(previous, "__name__", "time")
    return read


def _virtual_monotonic(sched: Scheduler) -> float:
    return sched.monotonic()


def _virtual_time(sched: Scheduler) -> float:
    return sched.wall()


# Module attributes replaced for the run, and the stand-in of each.
_MODULE_PATCHES: tuple[tuple[ModuleType, str, Any], ...] = (
    (threading, "Lock", ManagedLock),
    (threading, "RLock", ManagedRLock),
    (threading, "Condition", ManagedCondition),
    (threading, "Semaphore", ManagedSemaphore),
    (threading, "BoundedSemaphore", ManagedBoundedSemaphore),
    (threading, "Event", ManagedEvent),
    (threading, "Barrier", ManagedBarrier),
    (queue, "SimpleQueue", ManagedSimpleQueue),
    (time, "sleep", managed_sleep),
)
# Time readings, made per run around whatever is installed at the time (the test's clock).
_CLOCK_PATCHES: tuple[tuple[ModuleType, str, Callable[[Scheduler], float], float], ...] = (
    (queue, "time", _virtual_monotonic, 1.0),  # queue.Queue computes its timeouts with it
    (time, "monotonic", _virtual_monotonic, 1.0),
    (time, "time", _virtual_time, 1.0),
    (time, "monotonic_ns", _virtual_monotonic, 1e9),
    (time, "time_ns", _virtual_time, 1e9),
)
# Names a module may have bound at import (``from threading import Lock``), by identity.
_STAND_INS: dict[int, Any] = {
    id(getattr(module, name)): stand_in for module, name, stand_in in _MODULE_PATCHES
}


_ORIGINALS: tuple[tuple[Any, str, Any], ...] = (
    *((module, name, getattr(module, name)) for module, name, _ in _MODULE_PATCHES),
    *((module, name, getattr(module, name)) for module, name, _, _ in _CLOCK_PATCHES),
    (threading.Thread, "start", ORIGINAL_START),
    (threading.Thread, "join", ORIGINAL_JOIN),
    *((owner, name, getattr(owner, name)) for owner, name, _ in IO_PATCHES),
)


def restore_originals() -> None:
    """Put back every name a run patches (a safety net: each run restores its own patches)."""
    for owner, name, original in _ORIGINALS:
        if getattr(owner, name) is not original:
            setattr(owner, name, original)


class PatchSet:
    """The patches of one run; ``uninstall`` restores every one of them, newest first."""

    def __init__(self, sched: Scheduler, namespaces: list[dict[str, Any]]) -> None:
        self.sched = sched
        self.namespaces = namespaces
        self._undo: list[Callable[[], None]] = []

    def _set_attr(self, owner: Any, name: str, value: Any) -> None:
        old = getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, old))

    def _set_item(self, namespace: dict[str, Any], name: str, value: Any) -> None:
        old = namespace[name]
        namespace[name] = value
        self._undo.append(lambda: namespace.__setitem__(name, old))

    def install(self) -> None:
        try:
            stand_ins: dict[int, Any] = dict(_STAND_INS)
            for module, name, stand_in in _MODULE_PATCHES:
                if module is threading and name in ("Lock", "RLock"):
                    chained = chained_stand_in(name, stand_in)
                    for key, value in list(stand_ins.items()):
                        if value is stand_in:  # names bound at import get the chained one too
                            stand_ins[key] = chained
                    stand_ins[id(getattr(module, name))] = chained
                    stand_in = chained
                self._set_attr(module, name, stand_in)
            for module, name, managed, scale in _CLOCK_PATCHES:
                self._set_attr(module, name, _clock_function(managed, getattr(module, name), scale))
            for owner, name, wrapper in IO_PATCHES:
                self._set_attr(owner, name, wrapper)
            self._set_attr(threading.Thread, "start", managed_start)
            self._set_attr(threading.Thread, "join", managed_join)
            futures = sys.modules.get("concurrent.futures.thread")
            if futures is not None and hasattr(futures, "_global_shutdown_lock"):
                # Created at import, held across scheduling points in submit(): a real lock there
                # would block a managed thread outside the scheduler.
                self._set_attr(futures, "_global_shutdown_lock", ManagedLock())
            for namespace in self.namespaces:
                for name, value in list(namespace.items()):
                    stand_in = stand_ins.get(id(value))
                    if stand_in is not None:
                        self._set_item(namespace, name, stand_in)
            hook = self.sched.line_hook
            if hook is not None:
                hook.install()
                self._undo.append(hook.uninstall)
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        errors = []
        while self._undo:
            try:
                self._undo.pop()()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
