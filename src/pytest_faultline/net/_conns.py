"""The connections of the embedded proxy's loop (:mod:`.relay`): a connection's two directions
(*flows*), their queues and splice pipes, and the socket helpers the loop uses."""

from __future__ import annotations

import os
import socket
from collections import deque
from contextlib import suppress

from .toxics import Item, Stage, ToxicState

__all__ = ["FAST_BUFFER", "Conn", "Flow", "close_quietly", "drain", "make_pipe"]

FAST_BUFFER = 1 << 20  # bytes per recv_into on the no-toxic path
F_SETPIPE_SZ = 1031  # fcntl command (Linux); a 1 MiB pipe holds one fast-path read
QUEUE_LIMIT = 4 << 20  # stop reading a source while this much waits for its destination
DRAIN_READS = 16


class Flow:
    """One direction of one connection: ``src`` to ``dst``, named by its Toxiproxy stream."""

    def __init__(self, conn: Conn, src: socket.socket, dst: socket.socket, stream: str) -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        self.stream = stream
        self.stages: list[tuple[ToxicState, Stage | None]] = []
        self.queue: deque[Item] = deque()
        self.queued = 0
        self.eof_in = False  # the source ended
        self.ended = False  # the destination was shut down for writing
        self.blocked = False  # the last send could not take everything
        self.dropping = False  # a close or reset is on its way: ignore new input
        self.relayed = 0  # bytes taken by the fast path
        self.delivered = 0  # bytes handed to the destination (the byte offset events name)
        self.pipe: tuple[int, int] | None = None  # (read end, write end) for splice
        self.piped = 0  # bytes waiting in the pipe

    def close_pipe(self) -> None:
        if self.pipe is not None:
            for fd in self.pipe:
                with suppress(OSError):
                    os.close(fd)
            self.pipe = None
            self.piped = 0

    @property
    def toxic(self) -> bool:
        return any(stage is not None for _, stage in self.stages)

    def can_read(self) -> bool:
        return not (
            self.conn.connecting
            or self.eof_in
            or self.dropping
            or self.ended
            or self.blocked
            or self.queued >= QUEUE_LIMIT
        )

    def next_time(self) -> float | None:
        times = [d for _, s in self.stages if s is not None and (d := s.deadline()) is not None]
        if self.queue and not self.blocked and not self.piped:
            times.append(self.queue[0].due)
        return min(times) if times else None


class Conn:
    def __init__(self, number: int, client: socket.socket, server: socket.socket) -> None:
        self.number = number
        self.client = client
        self.server = server
        self.connecting = True
        self.closed = False
        self.up = Flow(self, client, server, "upstream")
        self.down = Flow(self, server, client, "downstream")
        self.masks = {client.fileno(): 0, server.fileno(): 0}

    def flows(self) -> tuple[Flow, Flow]:
        return self.up, self.down

    def delivered(self, stream: str) -> int:
        return self.flow(stream).delivered

    def flow(self, stream: str) -> Flow:
        return self.up if stream == "upstream" else self.down


def make_pipe() -> tuple[int, int] | None:
    try:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # out of descriptors: stay on recv_into
        return None
    with suppress(OSError):
        import fcntl

        fcntl.fcntl(write_end, F_SETPIPE_SZ, FAST_BUFFER)
    return read_end, write_end


def drain(sock: socket.socket) -> None:
    # close() with unread input sends RST instead of FIN; a graceful close reads it away first.
    # Bounded: a peer that keeps sending gets its RST after a megabyte.
    with suppress(OSError):
        sock.setblocking(False)
        for _ in range(DRAIN_READS):
            if not sock.recv(65536):
                break


def close_quietly(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.close()
