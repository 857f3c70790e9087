"""Calls the scheduler cannot see into: real sockets and ``select``.

A managed thread blocked in ``recv`` would hold the baton and stop every other managed thread
(one of which may be the sender). While a run is active, these calls *leave* the scheduler: the
other threads run meanwhile, and the thread waits for the baton again when the call returns.
The order of such returns is real time, so schedules that involve them are not exactly
replayable; the verification step reports it when it matters.
"""

from __future__ import annotations

import select
import selectors
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .runtime import current

__all__ = ["io_patches", "outside_scheduler"]

SOCKET_METHODS = (
    "accept",
    "connect",
    "connect_ex",
    "recv",
    "recv_into",
    "recvfrom",
    "recvfrom_into",
    "send",
    "sendall",
    "sendto",
)


@contextmanager
def outside_scheduler(op: str = "blocking call") -> Iterator[None]:
    """Let the other managed threads run while this one is in a call the scheduler cannot
    see (a C extension waiting on the network, a subprocess, ...). A no-op outside a run."""
    ctx = current()
    if ctx is None:
        yield
        return
    sched, me = ctx
    sched.leave(me, op)
    try:
        yield
    finally:
        sched.rejoin(me)


def _socket_wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        ctx = current()
        if ctx is None:
            return original(self, *args, **kwargs)
        if self.gettimeout() == 0:  # cannot block: an ordinary scheduling point
            ctx[0].point(ctx[1], f"socket.{name}")
            return original(self, *args, **kwargs)
        with outside_scheduler(f"socket.{name}"):
            return original(self, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"socket.{name}"
    method.__wrapped__ = original  # type: ignore[attr-defined]
    return method


def _call_wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if current() is None:
            return original(*args, **kwargs)
        with outside_scheduler(name):
            return original(*args, **kwargs)

    call.__name__ = getattr(original, "__name__", name)
    call.__wrapped__ = original  # type: ignore[attr-defined]
    call._fl_outside = True  # type: ignore[attr-defined]  # (a managed event loop unwraps it)
    return call


def io_patches() -> list[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """What a run wraps, as (owner, name, make-wrapper-around-the-current-object). The wrappers
    are made when the run installs them, around whatever is there then (a socket fault of the
    test, another layer's patch), never around what was there when this module was imported."""
    patches: list[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
        (socket.socket, name, _bind(_socket_wrapper, name)) for name in SOCKET_METHODS
    ]
    patches.append((select, "select", _bind(_call_wrapper, "select")))
    for cls_name in ("SelectSelector", "_PollLikeSelector"):
        cls = getattr(selectors, cls_name, None)
        if cls is not None and "select" in vars(cls):
            patches.append((cls, "select", _bind(_call_wrapper, "select")))
    return patches


def _bind(
    make: Callable[[str, Callable[..., Any]], Callable[..., Any]], name: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return lambda previous: make(name, previous)
