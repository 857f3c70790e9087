"""The data path of the embedded proxy's loop (:mod:`.relay`): moving bytes along one direction
of a connection.

A direction with no toxic and nothing queued takes the fast path (``recv_into`` a preallocated
buffer, then ``send``; ``splice()`` through a pipe once it has carried bulk data, which copies
nothing). A direction with toxics runs its chunks through the stages of :mod:`.toxics` into an
output queue of items with due times, sent in order, none before its time. The pump also keeps
each socket's selector interest in step with what its two directions can do. Connection
bookkeeping (accepting, dropping, toxics coming and going) stays with :class:`~.relay.ProxyLoop`,
which the pump calls back through ``drop`` and ``report``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from ._conns import FAST_BUFFER, Conn, Flow, make_pipe
from ._poll import READ, WRITE, Poller
from .toxics import CLOSE, DATA, EOF, RESET, Item, Stage, ToxicState

__all__ = ["FlowPump"]

TOXIC_CHUNK = 32 * 1024  # bytes per read when toxics apply (Toxiproxy reads 32 KiB too)
SPLICE_AFTER = 256 * 1024  # a direction that carried this much moves to splice (no copies)
SPLICE_ROUNDS = 8
SPLICE = hasattr(os, "splice") and hasattr(os, "pipe2")
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
Reporter = Callable[[ToxicState, Stage, int, str], None]


class Dropper(Protocol):
    def __call__(self, conn: Conn, *, reset: bool, why: str | None) -> None: ...


class FlowPump:
    """Moves the bytes of every connection of one proxy loop; runs on the loop's thread."""

    def __init__(
        self,
        sel: Poller,
        timed: set[Flow],
        *,
        drop: Dropper,
        report: Reporter,
        now: Callable[[], float],
    ) -> None:
        self._sel = sel
        self._timed = timed  # the loop's set of flows that wait for a due time
        self._drop = drop
        self._report = report
        self._now = now
        self._buf = bytearray(FAST_BUFFER)
        self._view = memoryview(self._buf)

    def read(self, flow: Flow) -> bool:
        """Read what ``flow``'s source has; True if no socket's interest changed."""
        if not flow.can_read():
            return False
        if not flow.queue and not (flow.stages and flow.toxic):
            return self.relay(flow)
        try:
            chunk = flow.src.recv(TOXIC_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        now = self._now()
        if not chunk:
            flow.eof_in = True
            self.feed(flow, 0, [Item(now, EOF)])
        else:
            self.feed(flow, 0, [Item(now, DATA, chunk)])
        self.flush(flow, now)
        return False

    def relay(self, flow: Flow) -> bool:
        """The fast path: no toxic, nothing queued. Straight from one socket to the other; a
        direction that carries bulk data moves to splice(), which copies nothing. True if no
        socket's interest changed (the caller then skips the selector update)."""
        if flow.pipe is None and SPLICE and flow.relayed >= SPLICE_AFTER:
            flow.pipe = make_pipe()
            if flow.pipe is None:
                flow.relayed = -(1 << 62)  # no pipe to be had: stay on recv_into
        if flow.pipe is not None:
            # Several rounds per wake-up: fewer select() calls while a bulk transfer lasts.
            src, pipe_in = flow.src.fileno(), flow.pipe[1]
            for _ in range(SPLICE_ROUNDS):
                try:
                    n = os.splice(src, pipe_in, FAST_BUFFER, flags=SPLICE_FLAGS)
                except (BlockingIOError, InterruptedError):
                    return True
                if n == 0:
                    flow.eof_in = True
                    self.end(flow)
                    return False
                flow.piped = n
                self.pump(flow)
                if flow.blocked:
                    return False
            return True
        try:
            n = flow.src.recv_into(self._buf)
        except (BlockingIOError, InterruptedError):
            return True
        if n == 0:
            flow.eof_in = True
            self.end(flow)
            return False
        flow.relayed += n
        try:
            sent = flow.dst.send(self._view[:n] if n < FAST_BUFFER else self._view)
        except (BlockingIOError, InterruptedError):
            sent = 0
        flow.delivered += sent
        if sent == n:
            return True
        flow.queue.append(Item(0.0, DATA, bytes(self._view[sent:n])))
        flow.queued += n - sent
        flow.blocked = True
        self._timed.add(flow)
        return False

    def pump(self, flow: Flow) -> None:
        """Move what the pipe holds to the destination; blocked if it cannot take it all."""
        assert flow.pipe is not None
        while flow.piped:
            try:
                sent = os.splice(flow.pipe[0], flow.dst.fileno(), flow.piped, flags=SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                flow.blocked = True
                return
            flow.piped -= sent
            flow.delivered += sent
        flow.blocked = False

    def unpipe(self, flow: Flow) -> None:
        """Bring bytes still in the pipe back to the front of the queue (a toxic arrived)."""
        if flow.pipe is not None and flow.piped:
            data = os.read(flow.pipe[0], flow.piped)
            flow.queue.appendleft(Item(0.0, DATA, data))
            flow.queued += len(data)
        flow.close_pipe()

    def feed(self, flow: Flow, start: int, items: list[Item]) -> None:
        """Run ``items`` through the stages from ``start`` on, into the output queue."""
        if flow.dropping:
            return
        for state, stage in flow.stages[start:]:
            if stage is None or not items:
                continue
            out: list[Item] = []
            for item in items:
                if item.kind == DATA:
                    out.extend(stage.data(item.due, item.data))
                elif item.kind == EOF:
                    out.extend(stage.eof(item.due))
                else:
                    out.append(item)
            if stage.acted and not stage.reported:
                stage.reported = True
                self._report(state, stage, flow.conn.number, flow.stream)
            items = out
        for item in items:
            flow.queue.append(item)
            flow.queued += len(item.data)
            if item.kind in (CLOSE, RESET):
                flow.dropping = True
                break
        self.touch(flow)

    def flush(self, flow: Flow, now: float) -> None:
        conn = flow.conn
        flow.blocked = False
        if flow.piped:
            try:
                self.pump(flow)
            except OSError as exc:
                self._drop(conn, reset=True, why=f"connection error: {exc}")
                return
            if flow.blocked:
                self.update(conn)
                return
        while flow.queue and not conn.closed:
            item = flow.queue[0]
            if item.due > now:
                break
            if item.kind == DATA:
                try:
                    sent = flow.dst.send(item.data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    self._drop(conn, reset=True, why=f"connection error: {exc}")
                    return
                flow.queued -= sent
                flow.delivered += sent
                if sent < len(item.data):
                    item.data = item.data[sent:]
                    flow.blocked = True
                    break
                flow.queue.popleft()
            elif item.kind == EOF:
                flow.queue.popleft()
                self.end(flow)
            else:
                flow.queue.popleft()
                names = [s.name for s, st in flow.stages if st is not None and st.acted]
                self._drop(
                    conn,
                    reset=item.kind == RESET,
                    why=f"toxic {', '.join(names) or '?'} "
                    f"{'reset' if item.kind == RESET else 'closed'} the connection "
                    f"(upstream offset {conn.up.delivered}, downstream offset "
                    f"{conn.down.delivered})",
                )
                return
        if not conn.closed:
            self.touch(flow)
            self.update(conn)

    def end(self, flow: Flow) -> None:
        if flow.queue or flow.piped:
            flow.queue.append(Item(0.0, EOF))
            return
        flow.ended = True
        with suppress(OSError):
            flow.dst.shutdown(socket.SHUT_WR)
        conn = flow.conn
        if conn.up.ended and conn.down.ended:
            self._drop(conn, reset=False, why=None)

    def touch(self, flow: Flow) -> None:
        if flow.queue or flow.toxic:
            self._timed.add(flow)
        else:
            self._timed.discard(flow)

    def update(self, conn: Conn) -> None:
        if conn.closed:
            return
        client = (READ if conn.up.can_read() else 0) | (WRITE if conn.down.blocked else 0)
        server = (READ if conn.down.can_read() else 0) | (
            WRITE if conn.connecting or conn.up.blocked else 0
        )
        for sock, mask in ((conn.client, client), (conn.server, server)):
            fd = sock.fileno()
            old = conn.masks[fd]
            if mask == old:
                continue
            if not old:
                self._sel.register(sock, mask, conn)
            elif not mask:
                self._sel.unregister(sock)
            else:
                self._sel.modify(sock, mask, conn)
            conn.masks[fd] = mask
