"""Benchmark of the embedded fault proxy without toxics, against a direct loopback connection.

Prints ``proxy throughput ratio: X`` (64 MiB bulk transfer, direct time / proxied time, best of
each over alternating runs, then the median and spread of the per-pair ratios; target >= 0.9),
``proxy added rtt: X us`` (1-byte ping-pong, per run the median round trip; the median over the
alternating runs of proxy minus direct, then the spread and the best; target <= 20), and the
same for the reference relays, run in the same rounds so that all see the same moment of a
shared machine: a plain threaded relay (two threads per connection), a minimal one-thread
``epoll`` relay in Python (the floor of a Python relay: no toxics, no bookkeeping), ``socat``
(a relay in C in its own process, the floor of any relay here) when it is on PATH, and a real
Toxiproxy when ``toxiproxy-server`` is on PATH; then the result of 200 concurrent connections
through one proxy (all bytes echoed back intact, one proxy thread) and the load average.
Run: ``PYTHONPATH=src python benchmarks/bench_proxy.py``.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import shutil
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from pytest_faultline.net.proxy import EmbeddedProxy

BULK_BYTES = 64 << 20
BLOCK = 1 << 20
PING_ROUNDS = 3000
CONNECTIONS = 200
PER_CONNECTION = 64 * 1024
REPEATS = 11
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


class EpollRelay:
    """The floor of a Python relay: one thread, ``epoll``, ``recv_into`` a preallocated buffer
    and ``send``, one connection at a time, no toxics and no bookkeeping (Linux only)."""

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listen: Address = self.listener.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=TIMEOUT_S)
            with client, server, suppress(OSError):
                self._relay(client, server)

    @staticmethod
    def _relay(client: socket.socket, server: socket.socket) -> None:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        peers = {client.fileno(): (client, server), server.fileno(): (server, client)}
        ended: set[int] = set()
        with select.epoll() as poller:
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                poller.register(sock.fileno(), select.EPOLLIN)
            while True:
                for fd, _ in poller.poll(TIMEOUT_S):
                    src, dst = peers[fd]
                    try:
                        n = src.recv_into(buf)
                    except BlockingIOError:
                        continue
                    if not n:  # pass the half-close on; done when both sides ended
                        dst.shutdown(socket.SHUT_WR)
                        poller.unregister(fd)
                        ended.add(fd)
                        if len(ended) == 2:
                            return
                        continue
                    try:
                        sent = dst.send(view[:n])
                    except BlockingIOError:
                        sent = 0
                    if sent < n:  # a full destination: wait for it right here
                        dst.setblocking(True)
                        dst.sendall(view[sent:n])
                        dst.setblocking(False)

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(TIMEOUT_S)


@contextmanager
def socat_relay(upstream: Address) -> Iterator[Address | None]:
    """``socat`` relaying to ``upstream`` (a process per connection, 1 MiB buffer, TCP_NODELAY
    on both legs), or None when it is not on PATH (Debian: ``apt-get install socat``)."""
    binary = shutil.which("socat")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            binary,
            "-b",
            str(BLOCK),
            f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay",
            f"TCP:{upstream[0]}:{upstream[1]},nodelay",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(("127.0.0.1", port), "socat")
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(10.0)


def _wait_listening(address: Address, what: str) -> None:
    deadline = time.monotonic() + 10.0
    while True:
        try:
            socket.create_connection(address, timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.05)  # polling a starting process: no event to wait on


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


@contextmanager
def real_toxiproxy(upstream: Address) -> Iterator[Address | None]:
    """A proxy on a real ``toxiproxy-server`` (started here) in front of ``upstream``, or None
    when there is none on PATH."""
    binary = shutil.which("toxiproxy-server")
    if binary is None:
        yield None
        return
    from pytest_faultline.net.toxiproxy import ToxiproxyClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "-host", "127.0.0.1", "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with urllib.request.urlopen(url + "/version", timeout=1.0):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("toxiproxy-server did not start") from None
                time.sleep(0.05)  # polling a starting process: no event to wait on
        proxy = ToxiproxyClient(url).create_proxy("bench", upstream)
        yield proxy.listen
    finally:
        process.terminate()
        process.wait(10.0)


def compare(name: str, direct: list[float], other: list[float]) -> str:
    """``direct / other``: best of each, then the median and spread of the per-pair ratios."""
    pairs = [d / o for d, o in zip(direct, other, strict=True)]
    return (
        f"{name}: {min(direct) / min(other):.2f} (median of pairs {statistics.median(pairs):.2f}, "
        f"spread {min(pairs):.2f}-{max(pairs):.2f})"
    )


def added(name: str, direct: list[float], other: list[float]) -> str:
    """The median over alternating runs of ``other - direct`` (each a run's median round trip),
    its spread, and best minus best."""
    pairs = [(o - d) * 1e6 for d, o in zip(direct, other, strict=True)]
    return (
        f"{name}: {statistics.median(pairs):.1f} us (spread {min(pairs):.1f}-{max(pairs):.1f}, "
        f"best {(min(other) - min(direct)) * 1e6:.1f})"
    )


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def references(upstream: Address) -> Iterator[dict[str, Address]]:
    """The reference relays in front of ``upstream``, by name (those that can run here)."""
    with (
        real_toxiproxy(upstream) as toxiproxy,
        socat_relay(upstream) as socat,
        contextlib.ExitStack() as stack,
    ):
        found: dict[str, Address] = {}
        threaded = ThreadedRelay(upstream)
        stack.callback(threaded.close)
        found["threaded relay"] = threaded.listen
        if hasattr(select, "epoll"):
            minimal = EpollRelay(upstream)
            stack.callback(minimal.close)
            found["minimal python epoll relay"] = minimal.listen
        if socat is not None:
            found["socat (C)"] = socat
        if toxiproxy is not None:
            found["real toxiproxy"] = toxiproxy
        yield found


def main() -> None:
    print(f"load average (1, 5, 15 min) at start: {load()}")
    mib = BULK_BYTES / (1 << 20)
    with (
        serve(sink) as sink_address,
        EmbeddedProxy(sink_address, name="bench") as proxy,
        references(sink_address) as refs,
    ):
        targets = {"direct": sink_address, "proxy": proxy.listen, **refs}
        # Alternate, so that a slow moment of the shared machine does not land on one side.
        runs: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(REPEATS):
            for name, address in targets.items():
                runs[name].append(bulk(address))
    for name, times in runs.items():
        print(
            f"{name + ':':32s} {mib / min(times):6.0f} MiB/s best, "
            f"{mib / statistics.median(times):6.0f} median"
        )
    for name in refs:
        print(compare(f"reference {name} ratio", runs["direct"], runs[name]))
    print(compare("proxy throughput ratio", runs["direct"], runs["proxy"]))

    with serve(echo) as echo_address, EmbeddedProxy(echo_address, name="bench") as proxy:
        with references(echo_address) as refs:
            targets = {"direct": echo_address, "proxy": proxy.listen, **refs}
            rtts: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(REPEATS):
                for name, address in targets.items():
                    rtts[name].append(ping(address))
        print(
            "median round trip: "
            + ", ".join(
                f"{name} {statistics.median(times) * 1e6:.1f} us" for name, times in rtts.items()
            )
        )
        for name in refs:
            print(added(f"reference {name} added rtt", rtts["direct"], rtts[name]))
        print(added("proxy added rtt", rtts["direct"], rtts["proxy"]))
        start = time.perf_counter()
        intact, threads = concurrent(proxy)
        elapsed = time.perf_counter() - start
    print(
        f"concurrent connections: {intact}/{CONNECTIONS} intact "
        f"({CONNECTIONS * PER_CONNECTION >> 10} KiB each way in {elapsed:.2f} s), "
        f"proxy threads: {threads}"
    )
    print(f"load average (1, 5, 15 min) at end: {load()}")
    if intact != CONNECTIONS:
        raise SystemExit("some connections lost or changed bytes")


if __name__ == "__main__":
    main()
