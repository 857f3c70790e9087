"""Scheduling points at asyncio primitives, even where they would not suspend.

Default asyncio switches tasks only where an ``await`` really suspends; a free ``Lock``, a
``Queue`` with room, a set ``Event`` or a ``drain()`` with an empty buffer return at once, so a
race window spanning them never opens. While a controlled run is active, the patched methods
first yield to the loop (one ready-queue round trip), which the strategy may use to run another
task, and they note who holds each lock and what each task waits on, for the deadlock report.
Patches are installed per exploration and restored exactly.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import types
from collections.abc import Callable, Generator
from typing import Any

from .loop import TaskControl, TaskLane, active_control, is_internal

__all__ = ["PrimitivePatches", "holder_of", "resource_name", "yield_point"]

_HOLDER = "_fl_holder"
_SITE = "_fl_site"


@types.coroutine
def _yield() -> Generator[None, None, None]:
    yield


async def yield_point() -> None:
    """A scheduling point: the running task goes back to the ready queue when a run is active."""
    if active_control() is not None:
        await _yield()


def _lane(control: TaskControl) -> TaskLane | None:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    return control.lane_of_task(task) if task is not None else None


def holder_of(resource: object) -> TaskLane | None:
    holder = getattr(resource, _HOLDER, None)
    return holder if isinstance(holder, TaskLane) else None


def resource_name(resource: object) -> str:
    site = getattr(resource, _SITE, None)
    kind = type(resource).__name__
    return f"{kind} {site}" if site else f"{kind} {id(resource):#x}"


def _creation_site() -> str | None:
    frame = sys._getframe(2)
    while frame is not None and is_internal(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _blocking(
    original: Callable[..., Any], would_block: Callable[[Any], bool], *, holds: bool = False
) -> Callable[..., Any]:
    """``original`` (an async method) made a scheduling point that notes what the task waits on
    and, for locks (``holds``), who holds it."""

    @functools.wraps(original)
    async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        control = active_control()
        if control is None or control.cleaning:
            return await original(self, *args, **kwargs)
        await _yield()
        lane = _lane(control)
        if lane is not None and would_block(self):
            lane.waits_on = self
        try:
            result = await original(self, *args, **kwargs)
        finally:
            if lane is not None:
                lane.waits_on = None
        if holds and lane is not None:
            setattr(self, _HOLDER, lane)
        return result

    return patched


def _point(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if active_control() is not None:
            await _yield()
        return await original(self, *args, **kwargs)

    return patched


def _released(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if getattr(self, _HOLDER, None) is not None and not _still_held(self):
            setattr(self, _HOLDER, None)
        return result

    return patched


def _still_held(resource: object) -> bool:
    locked = getattr(resource, "locked", None)
    return bool(locked()) if callable(locked) else False


def _sited(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        control = active_control()
        if control is not None:
            control.resources += 1
            setattr(self, _SITE, f"R{control.resources} created at {_creation_site()}")

    return patched


class PrimitivePatches:
    """The patched methods of asyncio's primitives, installed for one exploration."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []

    def _patch(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__[name]
        self._saved.append((cls, name, original))
        setattr(cls, name, make(original))

    def install(self) -> None:
        lock, event, sem, cond = asyncio.Lock, asyncio.Event, asyncio.Semaphore, asyncio.Condition
        queue, writer, reader = asyncio.Queue, asyncio.StreamWriter, asyncio.StreamReader
        for cls in (lock, event, sem, cond, queue):
            self._patch(cls, "__init__", _sited)
        self._patch(lock, "acquire", lambda o: _blocking(o, _still_held, holds=True))
        self._patch(lock, "release", _released)
        self._patch(sem, "acquire", lambda o: _blocking(o, lambda s: s.locked()))
        self._patch(event, "wait", lambda o: _blocking(o, lambda e: not e.is_set()))
        self._patch(cond, "wait", lambda o: _blocking(o, lambda c: True))
        self._patch(queue, "get", lambda o: _blocking(o, lambda q: q.empty()))
        self._patch(queue, "put", lambda o: _blocking(o, lambda q: q.full()))
        self._patch(queue, "join", lambda o: _blocking(o, lambda q: q._unfinished_tasks > 0))
        self._patch(writer, "drain", _point)
        for name in ("read", "readline", "readexactly", "readuntil"):
            self._patch(reader, name, _point)

    def uninstall(self) -> None:
        while self._saved:
            cls, name, original = self._saved.pop()
            setattr(cls, name, original)
