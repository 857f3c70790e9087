"""Every global a fault may patch, recorded at session start and checked after every test.

A fault that outlives its test (a patch restored to what was there at import rather than what
was there when it was installed, a patch never undone) makes the test after it fail here, named.
"""

from __future__ import annotations

import concurrent.futures.thread
import datetime
import queue
import select
import selectors
import socket
import sys
import threading
import time
from typing import Any

__all__ = ["Snapshot", "leaked", "restore", "snapshot"]

_MISSING = object()

THREADING_NAMES = (
    "Lock",
    "RLock",
    "Condition",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Barrier",
    "Timer",
    "Thread",
    "local",
    "settrace",
    "setprofile",
)
THREAD_METHODS = ("start", "join", "run", "_bootstrap", "_bootstrap_inner")


def _owners() -> list[tuple[str, Any, tuple[str, ...]]]:
    """(label, owner, names): class owners are read through their own ``__dict__``."""
    owners: list[tuple[str, Any, tuple[str, ...]]] = [
        ("threading", threading, THREADING_NAMES),
        ("threading.Thread", threading.Thread, THREAD_METHODS),
        ("time", time, tuple(n for n in dir(time) if not n.startswith("_"))),
        ("queue", queue, ("Queue", "SimpleQueue", "LifoQueue", "PriorityQueue", "time")),
        ("socket.socket", socket.socket, tuple(n for n in dir(socket.socket) if n[0] != "_")),
        ("select", select, tuple(n for n in dir(select) if not n.startswith("_"))),
        ("datetime", datetime, ("datetime", "date", "time")),
        (
            "concurrent.futures.thread",
            concurrent.futures.thread,
            ("_global_shutdown_lock", "_shutdown"),
        ),
    ]
    for name in dir(selectors):
        cls = getattr(selectors, name)
        if isinstance(cls, type) and issubclass(cls, selectors.BaseSelector):
            owners.append((f"selectors.{name}", cls, ("select", "register", "unregister")))
    return owners


Snapshot = dict[str, Any]


def _read(owner: Any, name: str) -> Any:
    if isinstance(owner, type):
        return vars(owner).get(name, _MISSING)
    return getattr(owner, name, _MISSING)


def snapshot() -> Snapshot:
    """Every patchable global, by ``owner.name``, plus the tracing and monitoring hooks."""
    out: Snapshot = {}
    for label, owner, names in _owners():
        for name in names:
            out[f"{label}.{name}"] = (owner, name, _read(owner, name))
    out["sys.gettrace()"] = (None, "trace", sys.gettrace())
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        for tool in range(6):
            out[f"sys.monitoring tool {tool}"] = (None, "tool", monitoring.get_tool(tool))
    return out


def leaked(before: Snapshot) -> list[str]:
    """The names whose object is not the one recorded in ``before``."""
    now = snapshot()
    return [
        key
        for key, (_, _, value) in before.items()
        if now[key][2] is not value and not (isinstance(value, str) and now[key][2] == value)
    ]


def restore(before: Snapshot, keys: list[str]) -> None:
    """Put back the recorded objects (so one leak does not fail every later test)."""
    for key in keys:
        owner, name, value = before[key]
        if owner is None:
            if name == "trace":
                sys.settrace(value)
            continue
        if value is _MISSING:
            if name in vars(owner):
                delattr(owner, name)
        else:
            setattr(owner, name, value)
