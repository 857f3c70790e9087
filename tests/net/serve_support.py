"""Raw HTTP clients and leak counters for the ``faultline serve`` tests (not a test module)."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_faultline import _raw
from pytest_faultline.net.server import Limits, ToxiproxyServer

from .proxy_support import BOUND_S

LINUX_ONLY = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="counts threads and descriptors in /proc/self (Linux only)",
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@contextmanager
def serving(**limits: Any) -> Iterator[ToxiproxyServer]:
    """A ``faultline serve`` on a free loopback port, with ``limits`` overriding the defaults."""
    with ToxiproxyServer(limits=Limits(**limits)) as server:
        yield server


def open_client(server: ToxiproxyServer, timeout: float = BOUND_S) -> socket.socket:
    return socket.create_connection(server.address, timeout=timeout)


def request_bytes(
    method: str, path: str, body: object = None, *, headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request; a non-bytes body is sent as JSON with its Content-Length."""
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1"]
    fields = {"Host": "127.0.0.1", "User-Agent": "serve-tests/1"}
    if raw:
        fields["Content-Length"] = str(len(raw))
    fields.update(headers or {})
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw


def read_answer(reader: Any, *, head: bool = False) -> Answer:
    """One response from ``reader`` (a socket's ``makefile("rb")``), body by Content-Length."""
    status_line = reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection without an answer")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    return Answer(status, headers, reader.read(length) if length else b"")


def exchange(server: ToxiproxyServer, data: bytes, *, head: bool = False) -> Answer:
    """Send ``data`` on a new connection and read one answer."""
    with open_client(server) as conn, conn.makefile("rb") as reader:
        conn.sendall(data)
        return read_answer(reader, head=head)


def closed_by_server(conn: socket.socket) -> bool:
    """True once the server closed its end (EOF within the bound), after any unread answer."""
    conn.settimeout(BOUND_S)
    try:
        while conn.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(count: Any, at_most: int, bound_s: float = BOUND_S) -> int:
    """``count()`` once it is at most ``at_most``, or its value when the bound runs out: a
    thread that signalled its end may need a moment before the kernel drops it."""
    deadline = _raw.monotonic() + bound_s
    value = int(count())
    while value > at_most and _raw.monotonic() < deadline:
        _raw.sleep(0.01)
        value = int(count())
    return value
