"""Real sockets in managed threads: a blocking call leaves the baton while in the kernel."""

from __future__ import annotations

import socket
import threading

import pytest

from pytest_faultline import DeadlockError, _raw
from pytest_faultline.controller import Faultline
from pytest_faultline.sched.io import outside_scheduler


def test_threads_talk_over_a_socketpair(faultline: Faultline) -> None:
    def body() -> None:
        left, right = socket.socketpair()
        replies: list[bytes] = []
        with left, right:
            left.settimeout(10)
            right.settimeout(10)

            def server() -> None:
                data = right.recv(16)  # blocks in the kernel until the client sends
                right.sendall(data.upper())

            def client() -> None:
                left.sendall(b"ping")
                replies.append(left.recv(16))

            threads = [threading.Thread(target=server), threading.Thread(target=client)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert replies == [b"PING"]

    result = faultline.explore(body, runs=20, strategy="random", stall_timeout=5)
    assert result.passed


def test_accept_and_connect_on_loopback(faultline: Faultline) -> None:
    def body() -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(10)
            port = listener.getsockname()[1]
            got: list[bytes] = []

            def serve() -> None:
                conn, _ = listener.accept()
                with conn:
                    got.append(conn.recv(16))

            t = threading.Thread(target=serve)
            t.start()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"hello")
            t.join()
        assert got == [b"hello"]

    assert faultline.explore(body, runs=10, strategy="random", stall_timeout=5).passed


def test_a_call_that_never_returns_is_reported_as_a_stall(faultline: Faultline) -> None:
    left, right = socket.socketpair()
    readers: list[threading.Thread] = []
    try:

        def body() -> None:
            def reader() -> None:
                right.settimeout(30)
                right.recv(1)  # nobody ever sends

            t = threading.Thread(target=reader, name="reader")
            readers.append(t)
            t.start()
            t.join()

        started = _raw.monotonic()
        with pytest.raises(DeadlockError, match="T1 \\(reader\\) did not come back"):
            faultline.explore(body, runs=3, stall_timeout=1.0)
        assert _raw.monotonic() - started < 20
    finally:
        left.close()  # the reader's recv returns b"" and the thread ends
        for t in readers:
            t.join(10)
        right.close()
    assert not any(t.is_alive() for t in readers)


def test_outside_scheduler_is_a_no_op_outside_a_run() -> None:
    with outside_scheduler("anything"):
        pass
