"""Real I/O on the controlled loop, taken in at points of the schedule, never by timing.

Plain asyncio polls its selector before every round of callbacks, so which tasks are ready at a
given moment depends on when the kernel delivered a reply. The controlled loop instead polls
only when nothing but I/O is left to run, and then lets the I/O in flight *settle* first: every
connection that sent a request to a peer outside the loop (and has not been answered yet) is
given up to :data:`REPLY_BOUND_S` of real time to become readable. Replies to the requests sent at
one point of the schedule are thus all taken in together, whichever arrived first, and handled
in the order in which the run registered
them.

An I/O event that wakes a task (a stream read the task awaits) is then not run first, as plain
callbacks are: it becomes the next step of that task, one alternative of the scheduling
decision like any ready task. So a schedule can hold one connection's reply while another
connection's task does several round trips, which is how real network delays reorder a
client's requests, and the choice is recorded in the token like any other.

What stays outside the seed: a reply slower than :data:`REPLY_BOUND_S`, a peer that speaks first
(data nobody asked for), and low-level ``loop.sock_*`` calls, which are not tracked as requests.
A replay that depends on one of them may diverge, and the replay check says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import select
import selectors
import sys
from typing import TYPE_CHECKING, Any

from .. import _raw

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["IO_SETTLE_S", "POLL_EVERY", "REPLY_BOUND_S", "IoGate", "waiting_task"]

IO_SETTLE_S = 0.02  # real time given to I/O in flight before virtual time jumps
# Real time a request in flight is given to be answered (or a connect to complete) before the
# loop goes on without it. Generous, because it is paid only when a reply really does not come
# (then once per request), and a loaded machine can delay a local server by tens of ms.
REPLY_BOUND_S = 0.25
# Before the data of a socket that sent several requests at once (a pipeline) is read, it is
# given until nothing more arrives for this long, so that one read takes in every reply the
# server sent together, not as many as the kernel happened to have when the read ran.
QUIET_S = 0.001

try:
    import fcntl
    import termios

    _FIONREAD: int | None = termios.FIONREAD
except ImportError:  # not a POSIX system: replies are read as they are
    _FIONREAD = None


def _unread(fd: int) -> int:
    """How many bytes the socket has received and nobody has read yet (-1: unknown)."""
    buffer = bytearray(4)
    try:
        fcntl.ioctl(fd, _FIONREAD, buffer)  # type: ignore[arg-type]
    except (OSError, ValueError):
        return -1
    return int.from_bytes(buffer, sys.byteorder)


POLL_EVERY = 256  # steps without a poll after which ready I/O is taken in anyway

Event = tuple[selectors.SelectorKey, int]


def _stream_waiter(transport: Any) -> Any:
    """The pending future of the task that awaits more data from the stream reader on
    ``transport`` (None: nobody waits, or it is not a stream)."""
    reader = getattr(getattr(transport, "_protocol", None), "_stream_reader", None)
    waiter = getattr(reader, "_waiter", None)
    return None if waiter is None or waiter.done() else waiter


def waiting_task(handle: asyncio.Handle) -> asyncio.Task[Any] | None:
    """The task a socket's read callback will wake: the one awaiting its stream reader."""
    waiter = _stream_waiter(getattr(handle._callback, "__self__", None))  # type: ignore[attr-defined]
    for callback, _context in getattr(waiter, "_callbacks", None) or ():
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            return owner
    return None


class IoGate:
    """The loop's view of its sockets: which have a request in flight, and which I/O
    callbacks are waiting in the ready queue."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.handles: set[asyncio.Handle] = set()  # every I/O callback a poll has queued
        self.awaiting: set[int] = set()  # fds that sent a request to an outside peer
        self.slow_writers: set[int] = set()  # fds that did not become writable in time
        self.slow_readers: set[int] = set()  # awaited fds whose data did not come in time
        self.clients: dict[int, Any] = {}  # fd -> transport to a peer outside the loop
        self.writes: dict[int, int] = {}  # fd -> writes since its data was last read
        self.unpolled = 0
        self.listening: set[Any] = set()  # addresses of the loop's own servers
        # the order in which the run registered its file descriptors: events are handled in
        # this order (fd numbers depend on what other threads of the process hold open)
        self.order: dict[int, int] = {}
        self._registered = 0

    def registered(self, fd: int) -> None:
        if fd not in self.order:
            self._registered += 1
            self.order[fd] = self._registered

    def unregistered(self, fd: int) -> None:
        if fd not in self.selector.get_map():
            self.order.pop(fd, None)
            self.clients.pop(fd, None)
            self.writes.pop(fd, None)

    # -- requests ----------------------------------------------------------------------------

    def watch(self, transport: Any, sock: Any, *, server: object) -> None:
        """Track the writes of a client transport to a peer outside the loop."""
        if server is not None:
            return  # a server's replies are not requests
        try:
            peer = sock.getpeername()
            fd = sock.fileno()
        except (OSError, AttributeError):
            return
        if peer in self.listening:
            return  # the peer is a server of this loop: its reply is a step of the schedule
        self.clients[fd] = transport
        for name in ("write", "writelines"):
            original = getattr(transport, name, None)
            if original is None:
                continue

            def sent(data: Any, _original: Any = original, _fd: int = fd) -> None:
                self.awaiting.add(_fd)
                self.writes[_fd] = self.writes.get(_fd, 0) + 1
                self.slow_readers.discard(_fd)
                _original(data)

            setattr(transport, name, sent)

    def serve(self, server: asyncio.AbstractServer) -> None:
        for sock in getattr(server, "sockets", None) or ():
            with contextlib.suppress(OSError):
                self.listening.add(sock.getsockname())

    # -- polling -----------------------------------------------------------------------------

    def due(self, ready: Iterable[asyncio.Handle]) -> bool:
        """Whether to poll before this step: nothing but I/O left to run, or a long time
        (in steps) since the last poll."""
        self.unpolled += 1
        if self.unpolled >= POLL_EVERY:
            return True
        return all(handle in self.handles for handle in ready)

    def poll(self, timeout: float, ready: Iterable[asyncio.Handle]) -> list[Event]:
        """The events to take in now: settled, new (not already queued), in fd order."""
        self.unpolled = 0
        events: list[Event] = self.selector.select(timeout)
        queued = set(ready)
        events = self._settle(events)
        fresh = [(key, mask) for key, mask in events if not self._queued(key, mask, queued)]
        fresh.sort(key=lambda event: (self.order.get(event[0].fd, 0), event[0].fd, event[1]))
        return fresh

    def queued(self, handles: Iterable[asyncio.Handle]) -> None:
        self.handles.update(handles)

    def ran(self, handle: asyncio.Handle) -> None:
        """An I/O callback ran: its socket's request, if any, was answered."""
        transport = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                fd = sock.fileno()
                self.awaiting.discard(fd)
                self.slow_readers.discard(fd)
                if self.writes.pop(fd, 0) > 1:
                    self._quiet(fd)
        self.slow_writers.clear()  # a socket written to becomes slow again only by timing out

    @staticmethod
    def _quiet(fd: int) -> None:
        """Wait (bounded) until ``fd`` has received nothing more for :data:`QUIET_S`. There is
        no event for "nothing more arrived": the poller waits on no file descriptor."""
        if _FIONREAD is None:
            return
        idle = select.poll()
        deadline = _raw.monotonic() + REPLY_BOUND_S
        size = _unread(fd)
        while size >= 0 and _raw.monotonic() < deadline:
            idle.poll(QUIET_S * 1000)
            now = _unread(fd)
            if now == size:
                return
            size = now

    @staticmethod
    def _queued(key: selectors.SelectorKey, mask: int, queued: set[asyncio.Handle]) -> bool:
        reader, writer = key.data
        read = mask & selectors.EVENT_READ and reader is not None and reader not in queued
        write = mask & selectors.EVENT_WRITE and writer is not None and writer not in queued
        return not (read or write)

    def _settle(self, events: list[Event]) -> list[Event]:
        """Wait (bounded) until every socket with a request in flight or a task blocked on its
        stream is readable, and every socket that waits to write (a connect in progress) is
        writable. A socket that does not get there in time is not waited for again until it
        sends or receives."""
        have = {(key.fd, selectors.EVENT_READ) for key, mask in events if mask & 1}
        have |= {(key.fd, selectors.EVENT_WRITE) for key, mask in events if mask & 2}
        registered = self.selector.get_map().values()
        reading = {key.fd for key in registered if key.events & selectors.EVENT_READ}
        self.awaiting &= reading
        wanted = {(fd, selectors.EVENT_READ) for fd in self.awaiting}
        # A task blocked on a client's stream wants its data, even when the request was answered
        # in part already (the second reply of a pipeline): wait for it too.
        wanted |= {
            (fd, selectors.EVENT_READ)
            for fd, transport in self.clients.items()
            if fd in reading
            and fd not in self.slow_readers
            and _stream_waiter(transport) is not None
        }
        wanted |= {
            (key.fd, selectors.EVENT_WRITE)
            for key in registered
            if key.events & selectors.EVENT_WRITE and key.fd not in self.slow_writers
        }
        missing = wanted - have
        if not missing:
            return events
        poller = select.poll()
        flags: dict[int, int] = {}
        for fd, mask in missing:
            bit = select.POLLIN if mask == selectors.EVENT_READ else select.POLLOUT
            flags[fd] = flags.get(fd, 0) | bit
        for fd, bits in flags.items():
            poller.register(fd, bits)
        deadline = _raw.monotonic() + REPLY_BOUND_S
        while flags:
            left = deadline - _raw.monotonic()
            if left <= 0:
                break
            for fd, got in poller.poll(max(1, math.ceil(left * 1000))):
                if got & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    got |= flags.get(fd, 0)
                flags[fd] = flags.get(fd, 0) & ~got
                if not flags[fd]:
                    del flags[fd]
                    poller.unregister(fd)
                else:
                    poller.modify(fd, flags[fd])
        for fd, bits in flags.items():  # not there in time: not waited for again
            if bits & select.POLLIN:
                self.awaiting.discard(fd)
                self.slow_readers.add(fd)
            if bits & select.POLLOUT:
                self.slow_writers.add(fd)
        return self.selector.select(0)
