"""Benchmark of the embedded fault proxy without toxics, against a direct loopback connection.

Prints ``proxy throughput ratio: X`` (64 MiB bulk transfer, through the proxy / direct; target
>= 0.7), ``proxy added rtt: X us`` (median 1-byte ping-pong, proxy minus direct; target < 60),
and the result of 200 concurrent connections through one proxy (all bytes echoed back intact,
one proxy thread). Run: ``PYTHONPATH=src python benchmarks/bench_proxy.py``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from pytest_faultline.net.proxy import EmbeddedProxy

BULK_BYTES = 64 << 20
BLOCK = 1 << 20
PING_ROUNDS = 3000
CONNECTIONS = 200
PER_CONNECTION = 64 * 1024
REPEATS = 5
TIMEOUT_S = 60.0

Address = tuple[str, int]


@contextmanager
def serve(handler: Callable[[socket.socket], None]) -> Iterator[Address]:
    """A loopback server running ``handler`` on each connection in its own thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    threads: list[threading.Thread] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(TIMEOUT_S)
            thread = threading.Thread(target=_run_closing, args=(handler, conn), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()
    finally:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(TIMEOUT_S)
        for thread in threads:
            thread.join(TIMEOUT_S)


def _run_closing(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with conn, suppress(OSError):
        handler(conn)


class ThreadedRelay:
    """The reference point: a plain relay, two threads per connection, 1 MiB recv_into and
    sendall. What a fast path cannot beat by much on the same machine at the same moment."""

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listen: Address = self.listener.getsockname()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=TIMEOUT_S)
            self.sockets += [client, server]
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        with suppress(OSError):
            while n := src.recv_into(buf):
                dst.sendall(view[:n])
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(TIMEOUT_S)
        for sock in self.sockets:
            sock.close()


def sink(conn: socket.socket) -> None:
    """Read everything, then answer with the byte count."""
    buf = bytearray(BLOCK)
    total = 0
    while n := conn.recv_into(buf):
        total += n
    conn.sendall(total.to_bytes(8, "big"))


def echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        conn.sendall(data)


def bulk(address: Address) -> float:
    """Seconds to push BULK_BYTES to the sink at ``address`` and hear back the count."""
    block = os.urandom(BLOCK)
    with socket.create_connection(address, timeout=TIMEOUT_S) as conn:
        start = time.perf_counter()
        for _ in range(BULK_BYTES // BLOCK):
            conn.sendall(block)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 8 and (part := conn.recv(8 - len(answer))):
            answer += part
        elapsed = time.perf_counter() - start
    if int.from_bytes(answer, "big") != BULK_BYTES:
        raise SystemExit(f"bulk transfer lost bytes: {answer!r}")
    return elapsed


def ping(address: Address) -> float:
    """Median seconds of a 1-byte round trip to the echo server at ``address``."""
    times = []
    with socket.create_connection(address, timeout=TIMEOUT_S) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(100):  # warm up
            conn.sendall(b"x")
            conn.recv(1)
        for _ in range(PING_ROUNDS):
            start = time.perf_counter()
            conn.sendall(b"x")
            if conn.recv(1) != b"x":
                raise SystemExit("ping-pong lost its byte")
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def concurrent(proxy: EmbeddedProxy) -> tuple[int, int]:
    """CONNECTIONS clients at once through ``proxy``, each echoing PER_CONNECTION random bytes
    driven from one selector; returns (intact connections, proxy threads)."""
    sel = selectors.DefaultSelector()
    state = {}
    for _ in range(CONNECTIONS):
        conn = socket.create_connection(proxy.listen, timeout=TIMEOUT_S)
        conn.setblocking(False)
        payload = os.urandom(PER_CONNECTION)
        state[conn] = [payload, 0, bytearray()]
        sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
    intact = 0
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while sel.get_map() and time.monotonic() < deadline:
            for key, mask in sel.select(1.0):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                payload, sent, got = state[conn]
                if mask & selectors.EVENT_WRITE and sent < len(payload):
                    sent += conn.send(payload[sent : sent + 65536])
                    state[conn][1] = sent
                    if sent == len(payload):
                        sel.modify(conn, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    got += conn.recv(65536)
                    if len(got) >= len(payload):
                        intact += got == payload
                        sel.unregister(conn)
    finally:
        for conn in state:
            conn.close()
        sel.close()
    threads = sum(t.name.startswith("faultline-proxy") for t in threading.enumerate())
    return intact, threads


def main() -> None:
    with serve(sink) as sink_address, EmbeddedProxy(sink_address, name="bench") as proxy:
        # Alternate the two, best of each: the machine is shared, so a slow moment must not
        # land on one side only.
        direct, proxied, relayed = float("inf"), float("inf"), float("inf")
        relay = ThreadedRelay(sink_address)
        try:
            for _ in range(REPEATS):
                direct = min(direct, bulk(sink_address))
                proxied = min(proxied, bulk(proxy.listen))
                relayed = min(relayed, bulk(relay.listen))
        finally:
            relay.close()
    mib_s = BULK_BYTES / (1 << 20)
    print(f"direct loopback: {mib_s / direct:8.0f} MiB/s")
    print(f"through proxy:   {mib_s / proxied:8.0f} MiB/s")
    print(f"plain threaded relay (reference): {mib_s / relayed:8.0f} MiB/s")
    print(f"reference threaded relay ratio: {direct / relayed:.2f}")
    print(f"proxy throughput ratio: {direct / proxied:.2f}")

    with serve(echo) as echo_address, EmbeddedProxy(echo_address, name="bench") as proxy:
        direct_rtt, proxied_rtt = float("inf"), float("inf")
        for _ in range(REPEATS):
            direct_rtt = min(direct_rtt, ping(echo_address))
            proxied_rtt = min(proxied_rtt, ping(proxy.listen))
        print(f"direct rtt: {direct_rtt * 1e6:.1f} us, through proxy: {proxied_rtt * 1e6:.1f} us")
        print(f"proxy added rtt: {(proxied_rtt - direct_rtt) * 1e6:.1f} us")
        start = time.perf_counter()
        intact, threads = concurrent(proxy)
        elapsed = time.perf_counter() - start
    print(
        f"concurrent connections: {intact}/{CONNECTIONS} intact "
        f"({CONNECTIONS * PER_CONNECTION >> 10} KiB each way in {elapsed:.2f} s), "
        f"proxy threads: {threads}"
    )
    if intact != CONNECTIONS:
        raise SystemExit("some connections lost or changed bytes")


if __name__ == "__main__":
    main()
