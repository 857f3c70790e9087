"""A bounded loopback server and length-prefixed message readers for the socket fault tests.

The same source is written into pytester projects (``SOURCE``), so the end-to-end tests use
exactly these readers.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

BOUND_S = 5.0
HEADER = struct.Struct("!I")
T = TypeVar("T")


class ProtocolError(Exception):
    """A message could not be read whole: what a correct reader reports."""


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def read_naive(sock: socket.socket) -> bytes:
    """The bug: one recv per field, assuming it returns every byte asked for."""
    (size,) = HEADER.unpack(sock.recv(HEADER.size))
    return sock.recv(size)


def read_lenient(sock: socket.socket) -> bytes:
    """The incident-001 bug: loops, but takes a timeout or EOF as the end of the message."""
    data = b""
    try:
        while len(data) < HEADER.size:
            chunk = sock.recv(HEADER.size - len(data))
            if not chunk:
                return data
            data += chunk
        (size,) = HEADER.unpack(data)
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Loop until ``size`` bytes; a timeout or EOF before that is a ProtocolError."""
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            raise ProtocolError(f"timed out after {len(data)} of {size} bytes") from None
        if not chunk:
            raise ProtocolError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def read_correct(sock: socket.socket) -> bytes:
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    return recv_exactly(sock, size)


class LoopbackServer:
    """A TCP server on 127.0.0.1 in one thread: ``handler(conn)`` runs for each of the first
    ``connections`` accepted connections, which are then closed. Everything is bounded and
    closed on exit; an exception in the handler is re-raised there (``check=True``)."""

    def __init__(
        self,
        handler: Callable[[socket.socket], object],
        connections: int = 1,
        *,
        check: bool = True,
    ) -> None:
        self.handler = handler
        self.connections = connections
        self.check = check
        self.errors: list[BaseException] = []
        self.served = threading.Event()  # set after each handler returns
        self.done = threading.Event()  # set when the thread ends
        self.closing = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(BOUND_S)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._run, name="loopback-server", daemon=True)

    @property
    def peer(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _run(self) -> None:
        try:
            for _ in range(self.connections):
                try:
                    conn, _addr = self.listener.accept()
                except OSError:
                    if self.closing:
                        return  # the test is over before every connection was made
                    raise
                with conn:
                    conn.settimeout(BOUND_S)
                    self.handler(conn)
                self.served.set()
        except BaseException as exc:  # reported by __exit__, not lost in the thread
            self.errors.append(exc)
        finally:
            self.done.set()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closing = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a pending accept (Linux)
        self.listener.close()
        self._thread.join(BOUND_S)
        assert not self._thread.is_alive(), "loopback server thread did not end"
        if self.check and self.errors and exc is None:
            raise self.errors[0]


def sender(*payloads: bytes) -> Callable[[socket.socket], None]:
    """A handler that sends each payload framed, then closes."""

    def send(conn: socket.socket) -> None:
        conn.sendall(b"".join(frame(p) for p in payloads))

    return send


def connect(address: tuple[str, int], timeout: float | None = BOUND_S) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def outcome(fn: Callable[[], T]) -> T | BaseException:
    """The value of ``fn()`` or the exception it raised, for asserting the naive side fails."""
    try:
        return fn()
    except Exception as exc:
        return exc
