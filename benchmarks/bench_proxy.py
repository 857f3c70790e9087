"""Benchmark of the embedded fault proxy without toxics, against a direct loopback connection.

Prints ``proxy throughput ratio: X`` (64 MiB bulk transfer, through the proxy / direct; target
>= 0.7), ``proxy added rtt: X us`` (median 1-byte ping-pong, proxy minus direct; target < 60),
and the result of 200 concurrent connections through one proxy (all bytes echoed back intact,
one proxy thread). Run: ``PYTHONPATH=src python benchmarks/bench_proxy.py``.
"""

from __future__ import annotations

import os
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pytest_faultline.net.proxy import EmbeddedProxy

BULK_BYTES = 64 << 20
BLOCK = 1 << 20
PING_ROUNDS = 3000
CONNECTIONS = 200
PER_CONNECTION = 64 * 1024
REPEATS = 3
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
        listener.close()
        acceptor.join(TIMEOUT_S)
        for thread in threads:
            thread.join(TIMEOUT_S)


def _run_closing(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with conn:
        try:
            handler(conn)
        except OSError:
            pass


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
        direct = min(bulk(sink_address) for _ in range(REPEATS))
        proxied = min(bulk(proxy.listen) for _ in range(REPEATS))
    mib_s = BULK_BYTES / (1 << 20)
    print(f"direct loopback: {mib_s / direct:8.0f} MiB/s")
    print(f"through proxy:   {mib_s / proxied:8.0f} MiB/s")
    print(f"proxy throughput ratio: {direct / proxied:.2f}")

    with serve(echo) as echo_address, EmbeddedProxy(echo_address, name="bench") as proxy:
        direct_rtt = min(ping(echo_address) for _ in range(REPEATS))
        proxied_rtt = min(ping(proxy.listen) for _ in range(REPEATS))
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
