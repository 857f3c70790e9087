"""Small real programs the sweep tests run: a framed request over TCP (a naive client and a
careful one) and a job that writes through fault points and a store's ``save``."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from pytest_faultline import InjectedFault, point

HEADER = struct.Struct("!I")
TIMEOUT_S = 2.0
ACCEPT_POLL_S = 0.02


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"the peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


@contextmanager
def upper_server() -> Iterator[tuple[str, int]]:
    """A server that answers each framed request with the payload in upper case; a connection
    that fails is closed and the next one served. Stopped (bounded) when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(ACCEPT_POLL_S)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with conn:  # a close may fail too (the sweep's close sites): serve the next
                    conn.settimeout(TIMEOUT_S)
                    (size,) = HEADER.unpack(recv_exactly(conn, HEADER.size))
                    conn.sendall(frame(recv_exactly(conn, size).upper()))
            except OSError:
                continue

    thread = threading.Thread(target=serve, name="upper-server")
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        thread.join(TIMEOUT_S)
        listener.close()


def naive_request(address: tuple[str, int], payload: bytes) -> bytes:
    """Assumes one ``recv`` returns the whole header and the whole reply."""
    with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
        sock.sendall(frame(payload))
        (size,) = HEADER.unpack(sock.recv(HEADER.size))
        return sock.recv(size)


def careful_request(address: tuple[str, int], payload: bytes, attempts: int = 3) -> bytes:
    """Reads until it has every byte, and tries again on a new connection when one fails."""
    for attempt in range(attempts):
        try:
            with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
                sock.sendall(frame(payload))
                (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
                return recv_exactly(sock, size)
        except OSError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Store:
    """Where a job's results go."""

    def __init__(self) -> None:
        self.rows: list[str] = []

    def save(self, row: str) -> None:
        self.rows.append(row)


def transfer(accounts: dict[str, int], amount: int, *, careful: bool) -> None:
    """Move ``amount`` from a to b; the careful version puts it back when the credit fails."""
    point("bank.debit")
    accounts["a"] -= amount
    try:
        point("bank.credit")
        accounts["b"] += amount
    except InjectedFault:
        if not careful:
            raise
        accounts["a"] += amount
        raise


def job_with_one_retry(store: Store) -> None:
    """Two steps, each retried once; but the job as a whole tolerates one failure only."""
    failures = 0
    for step in ("first", "second"):
        while True:
            try:
                point(f"job.{step}")
                store.save(step)
                break
            except InjectedFault:
                failures += 1
                if failures > 1:
                    raise


def open_pair(address: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connections to ``address``, each used for one framed round trip (a connection
    that fails is closed and made again, three times at most)."""
    socks: list[socket.socket] = []
    for _ in range(count):
        for attempt in range(3):
            sock = None
            try:
                sock = socket.create_connection(address, timeout=TIMEOUT_S)
                sock.sendall(frame(b"x"))
                recv_exactly(sock, HEADER.size + 1)
            except OSError:
                careful_close_all([sock] if sock is not None else [])
                if attempt == 2:
                    careful_close_all(socks)
                    raise
                continue
            socks.append(sock)
            break
    return socks


def naive_close_all(socks: list[socket.socket]) -> None:
    """Shuts each connection down, then closes it: a shutdown or close that fails skips the
    rest, and the sockets after it are never closed."""
    for sock in socks:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def careful_close_all(socks: list[socket.socket]) -> None:
    """As ``socketserver.TCPServer.shutdown_request``: a failed shutdown (the peer is gone) is
    no reason not to close, and a failed close still released the descriptor."""
    for sock in socks:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()


def read_to_end_request(address: tuple[str, int], payload: bytes) -> bytes:
    """Sends a framed request and takes the reply to be everything until the server closes (as
    an HTTP/1.0 client does): a server that ends with a reset instead of a close breaks it."""
    with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
        sock.sendall(frame(payload))
        data = b""
        while chunk := sock.recv(1024):
            data += chunk
        return data[HEADER.size :]
