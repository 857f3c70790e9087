"""What a run patches: ``threading``'s primitives, ``Thread.start``/``join``, ``queue``, ``time``,
blocking socket calls and ``select``.

Installed when a run starts and removed when it ends, also when it fails. Every patch captures
the object it replaces *when it is installed* (the real function, or a socket fault, the test's
clock or the lock-order watcher installed before the run) and restores exactly that, so faults
compose in any order and nesting, and a run wraps whatever faults are active now. Unmanaged
threads that call a patched name during the run get what was there before the run.
"""

from __future__ import annotations

import _thread
import contextlib
import queue
import sys
import threading
import time
import types
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import _raw
from .._sites import rechain
from .io import io_patches
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

__all__ = ["PatchSet"]

JOIN_BOUND_S = _raw.JOIN_BOUND_S
_MISSING = object()


def _make_start(previous: Callable[[threading.Thread], None]) -> Callable[[threading.Thread], None]:
    def managed_start(self: threading.Thread) -> None:
        """``Thread.start`` while a run is active: a thread started by a managed thread is
        managed."""
        ctx = current()
        if ctx is None:
            previous(self)
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
            sched.run_managed(rec, user_run)
            with contextlib.suppress(AttributeError):
                del self.run

        self.run = run  # type: ignore[method-assign]
        try:
            previous(self)
        except BaseException:
            rec.state = DONE
            raise
        sched.point(me, f"start {rec.label}")

    return managed_start


def _make_join(
    previous: Callable[[threading.Thread, float | None], None],
) -> Callable[[threading.Thread, float | None], None]:
    def managed_join(self: threading.Thread, timeout: float | None = None) -> None:
        """``Thread.join`` while a run is active: waiting for a managed thread is a scheduler
        wait."""
        ctx = current()
        if ctx is None:
            previous(self, timeout)
            return
        sched, me = ctx
        rec = sched.record_of(self)
        if rec is None:  # a thread started outside the run: a real join, outside the baton
            with sched.outside(me, f"join {self.name}"):
                previous(self, timeout)
            return
        if rec is me:
            raise RuntimeError("cannot join current thread")
        sched.point(me, f"join {rec.label}")
        if rec.state != DONE:
            sched.block(me, "join", rec, lambda: rec.state == DONE, timeout)
        if rec.state == DONE:
            _raw.thread_join(self, JOIN_BOUND_S)  # it has left the scheduler and is ending

    return managed_join


class _ThreadsInOrder(dict):  # type: ignore[type-arg]
    """A thread pool's set of threads, iterated in the order they were started: ``shutdown``
    joins them in that order (a plain set's order follows the objects' addresses, which differ
    from process to process, and so would the schedule of the joins)."""

    def add(self, thread: object) -> None:
        self[thread] = None


def _ordered_threads(previous: Callable[[Any], None]) -> Callable[[Any], None]:
    def adjust(self: Any) -> None:
        if type(self._threads) is set:
            self._threads = _ThreadsInOrder.fromkeys(self._threads)
        previous(self)

    adjust.__wrapped__ = previous  # type: ignore[attr-defined]
    return adjust


def _make_sleep(previous: Callable[[float], None]) -> Callable[[float], None]:
    def managed_sleep(seconds: float) -> None:
        ctx = current()
        if ctx is None:
            previous(seconds)
            return
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        ctx[0].sleep(ctx[1], float(seconds))

    managed_sleep.__name__ = "sleep"
    return managed_sleep


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
    read.__wrapped__ = previous  # type: ignore[attr-defined]
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
)
# Time readings, made per run around whatever is installed at the time (the test's clock).
_CLOCK_PATCHES: tuple[tuple[ModuleType, str, Callable[[Scheduler], float], float], ...] = (
    (time, "monotonic", _virtual_monotonic, 1.0),
    (time, "time", _virtual_time, 1.0),
    (time, "monotonic_ns", _virtual_monotonic, 1e9),
    (time, "time_ns", _virtual_time, 1e9),
)
# The objects ``from threading import Lock`` / ``from time import monotonic`` may have bound in a
# module before anything was patched: rebound by identity in the namespaces of a run, beside the
# objects installed when the run starts.
_PRISTINE: dict[tuple[ModuleType, str], Any] = {
    (threading, "Lock"): _thread.allocate_lock,
    (threading, "RLock"): _thread.RLock,
    (time, "monotonic"): _raw.monotonic,
    (time, "time"): _raw.time_time,
    (time, "sleep"): _raw.sleep,
}


class PatchSet:
    """The patches of one run; ``uninstall`` restores every one of them, newest first."""

    def __init__(self, sched: Scheduler, namespaces: list[dict[str, Any]]) -> None:
        self.sched = sched
        self.namespaces = namespaces
        self._undo: list[Callable[[], None]] = []
        self.rebound: list[str] = []

    def _set_attr(self, owner: Any, name: str, value: Any) -> None:
        # What the owner itself holds (a class may inherit the method): put back exactly that.
        saved = vars(owner).get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, value)

        def undo() -> None:
            if saved is _MISSING:
                if name in vars(owner):
                    delattr(owner, name)
            else:
                setattr(owner, name, saved)

        self._undo.append(undo)

    def _set_item(self, namespace: dict[str, Any], name: str, value: Any) -> None:
        old = namespace[name]
        namespace[name] = value
        self._undo.append(lambda: namespace.__setitem__(name, old))

    def _stand_in(
        self, replacements: dict[int, Any], owner: ModuleType, name: str, new: Any
    ) -> Any:
        current_value = getattr(owner, name)
        replacements[id(current_value)] = new
        pristine = _PRISTINE.get((owner, name))
        if pristine is not None:
            replacements[id(pristine)] = new
        self._set_attr(owner, name, new)
        return new

    def install(self) -> None:
        try:
            replacements: dict[int, Any] = {}
            for module, name, stand_in in _MODULE_PATCHES:
                if module is threading and name in ("Lock", "RLock"):
                    stand_in = rechain(getattr(module, name), stand_in)
                self._stand_in(replacements, module, name, stand_in)
            self._stand_in(replacements, time, "sleep", _make_sleep(time.sleep))
            for module, name, managed, scale in _CLOCK_PATCHES:
                previous = getattr(module, name)
                self._stand_in(
                    replacements, module, name, _clock_function(managed, previous, scale)
                )
            # queue.Queue computes its timeouts with its own ``from time import monotonic``.
            queue_time = getattr(queue, "time", None)
            if queue_time is not None and id(queue_time) in replacements:
                self._set_attr(queue, "time", replacements[id(queue_time)])
            for owner, name, make in io_patches():
                self._set_attr(owner, name, make(getattr(owner, name)))
            self._set_attr(threading.Thread, "start", _make_start(threading.Thread.start))
            self._set_attr(threading.Thread, "join", _make_join(threading.Thread.join))
            futures = sys.modules.get("concurrent.futures.thread")
            if futures is not None and hasattr(futures, "_global_shutdown_lock"):
                # Created at import, held across scheduling points in submit(): a real lock there
                # would block a managed thread outside the scheduler.
                self._set_attr(futures, "_global_shutdown_lock", ManagedLock())
            pool = getattr(futures, "ThreadPoolExecutor", None)
            if pool is not None and "_adjust_thread_count" in vars(pool):
                adjust = vars(pool)["_adjust_thread_count"]
                self._set_attr(pool, "_adjust_thread_count", _ordered_threads(adjust))
            for namespace in self.namespaces:
                self._rebind(namespace, replacements)
            hook = self.sched.line_hook
            if hook is not None:
                hook.install()  # once per exploration, which removes it at its end
        except BaseException:
            self.uninstall()
            raise

    def _rebind(self, namespace: dict[str, Any], replacements: dict[int, Any]) -> None:
        """Names bound at import in ``namespace`` (``from time import monotonic``,
        ``from threading import Lock``) and default arguments of its functions and of the
        methods of its classes (``timer=time.monotonic``) get the run's stand-ins."""
        module_name = namespace.get("__name__")
        for name, value in list(namespace.items()):
            stand_in = replacements.get(id(value))
            if stand_in is not None:
                self._set_item(namespace, name, stand_in)
                self.rebound.append(f"{module_name}.{name}")
            elif isinstance(value, types.FunctionType):
                self._rebind_defaults(value, replacements)
            elif isinstance(value, type) and getattr(value, "__module__", None) == module_name:
                for member in vars(value).values():
                    func = getattr(member, "__func__", member)  # staticmethod, classmethod
                    if isinstance(func, types.FunctionType):
                        self._rebind_defaults(func, replacements)

    def _rebind_defaults(self, func: types.FunctionType, replacements: dict[int, Any]) -> None:
        defaults = func.__defaults__
        if defaults and any(id(d) in replacements for d in defaults):
            func.__defaults__ = tuple(replacements.get(id(d), d) for d in defaults)
            self._undo.append(lambda: setattr(func, "__defaults__", defaults))
            self.rebound.append(f"{func.__module__}.{func.__qualname__} (default argument)")
        kwdefaults = func.__kwdefaults__
        if kwdefaults and any(id(d) in replacements for d in kwdefaults.values()):
            func.__kwdefaults__ = {k: replacements.get(id(d), d) for k, d in kwdefaults.items()}
            self._undo.append(lambda: setattr(func, "__kwdefaults__", kwdefaults))
            self.rebound.append(f"{func.__module__}.{func.__qualname__} (keyword default)")

    def uninstall(self) -> None:
        errors = []
        while self._undo:
            try:
                self._undo.pop()()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
