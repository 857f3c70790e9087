"""Upstream servers and proxy targets shared by the proxy tests (not a test module)."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from pytest_faultline.net.protocol import Proxy, Toxic
from pytest_faultline.net.proxy import EmbeddedProxy, EmbeddedToxic
from pytest_faultline.net.server import ToxiproxyServer
from pytest_faultline.net.toxiproxy import RemoteProxy, RemoteToxic, ToxiproxyClient

BOUND_S = 5.0  # every blocking socket call in these tests gives up after this
Handler = Callable[[socket.socket], None]
NO_REAL_TOXIPROXY = (
    "no real Toxiproxy: toxiproxy-server is not on PATH and TOXIPROXY_URL is not set "
    "(install Toxiproxy 2.12 or set TOXIPROXY_URL=http://HOST:PORT to run this target)"
)
_names = itertools.count(1)


class Upstream:
    """A loopback TCP server running ``handler`` per connection on its own thread; ``close()``
    closes every socket and joins every thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.address: tuple[str, int] = self.listener.getsockname()
        self.accepted = 0
        self.received: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.settimeout(BOUND_S)
            self.accepted += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with suppress(OSError):
            self.handler(conn)
        conn.close()

    def close(self) -> None:
        with suppress(OSError):  # wakes the thread blocked in accept() (close() does not)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._acceptor.join(BOUND_S)
        for conn in self._conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(BOUND_S)
        for conn in self._conns:
            conn.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def sender(payload: bytes) -> Handler:
    """Send ``payload`` on connect, then close."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)

    return handler


def recorder(sink: list[bytes], done: threading.Event) -> Handler:
    """Keep everything received until EOF in ``sink``, set ``done``, then close."""

    def handler(conn: socket.socket) -> None:
        data = b""
        while part := conn.recv(65536):
            data += part
        sink.append(data)
        done.set()

    return handler


@contextmanager
def upstream(handler: Handler) -> Iterator[Upstream]:
    server = Upstream(handler)
    try:
        yield server
    finally:
        server.close()


def connect(proxy: Proxy) -> socket.socket:
    return socket.create_connection(proxy.listen, timeout=BOUND_S)


def read_until_eof(conn: socket.socket) -> bytes:
    data = b""
    while part := conn.recv(65536):
        data += part
    return data


def closed_port() -> tuple[str, int]:
    """A loopback address nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address: tuple[str, int] = sock.getsockname()
        return address


class Target:
    """Where the contract suite makes its proxies."""

    def __init__(self, kind: str, make: Callable[..., Proxy], client: ToxiproxyClient | None):
        self.kind = kind
        self._make = make
        self.client = client

    def proxy(
        self, upstream: tuple[str, int], *, name: str | None = None, listen: object = None
    ) -> Proxy:
        return self._make(upstream, name=name, listen=listen)


def embedded_target(faultline: object, cleanup: list[Callable[[], object]]) -> Target:
    def make(upstream: tuple[str, int], *, name: str | None, listen: object) -> Proxy:
        if listen is None:
            return faultline.proxy(upstream, name=name)  # type: ignore[attr-defined,no-any-return]
        proxy = EmbeddedProxy(upstream, name=name or "proxy", listen=listen)  # type: ignore[arg-type]
        cleanup.append(proxy.close)
        return proxy

    return Target("embedded", make, None)


def remote_target(
    kind: str, client: ToxiproxyClient, cleanup: list[Callable[[], object]]
) -> Target:
    def make(upstream: tuple[str, int], *, name: str | None, listen: object) -> Proxy:
        proxy = client.create_proxy(
            name or f"contract_{os.getpid()}_{next(_names)}",
            upstream,
            listen=listen or ("127.0.0.1", 0),  # type: ignore[arg-type]
        )
        cleanup.append(proxy.close)
        return proxy

    return Target(kind, make, client)


@contextmanager
def faultline_serve() -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer().start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def real_toxiproxy() -> Iterator[str]:
    """The URL of a real Toxiproxy: TOXIPROXY_URL, or a toxiproxy-server we start; else skip."""
    url = os.environ.get("TOXIPROXY_URL")
    if url:
        yield url.rstrip("/")
        return
    binary = shutil.which("toxiproxy-server")
    if binary is None:
        pytest.skip(NO_REAL_TOXIPROXY)
    host, port = closed_port()
    process = subprocess.Popen(
        [binary, "-host", host, "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + BOUND_S
        while True:
            try:
                with urllib.request.urlopen(url + "/version", timeout=1.0):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.skip(f"toxiproxy-server at {binary} did not start on {url}")
                time.sleep(0.05)  # polling a starting process; no event to wait on
        yield url
    finally:
        process.terminate()
        process.wait(BOUND_S)


def backends_satisfy_the_protocols(
    embedded: EmbeddedProxy, remote: RemoteProxy, toxic: EmbeddedToxic, remote_toxic: RemoteToxic
) -> tuple[Proxy, Proxy, Toxic, Toxic]:
    """Not called: ``mypy --strict`` checks that each backend satisfies the protocols."""
    return embedded, remote, toxic, remote_toxic
