"""A sweep run fails when a thread of the body dies of the fault, even when the body returns:
the server thread's exception is that run's failure, named by its fault, instead of a warning at
the end of the test that points at no run."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest

from pytest_faultline.controller import Faultline

TIMEOUT_S = 2.0


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=13, nodeid="tests/sweep/test_sweep_threads.py::test_x")
    yield controller
    controller.close()


def greet_once(*, careful: bool) -> None:
    """A server thread sends one greeting; the client does not mind losing it, or not getting
    through at all. The careless server lets a failed send end its thread."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # the listener was shut down: nobody came
        with conn:
            try:
                conn.sendall(b"hello")
            except OSError:
                if not careful:
                    raise

    thread = threading.Thread(target=serve, name="greeter")
    thread.start()
    try:
        with (
            suppress(OSError),
            socket.create_connection(listener.getsockname()[:2], timeout=TIMEOUT_S) as client,
        ):
            client.recv(5)
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes an accept still waiting
        thread.join(TIMEOUT_S)
        listener.close()


def test_a_thread_killed_by_the_fault_fails_its_run(fl: Faultline) -> None:
    hook = threading.excepthook
    found = fl.sweep(lambda: greet_once(careful=False), kinds=["reset"], raises=False)
    assert threading.excepthook is hook
    failed = {r.sites[0].describe(): r.failure for r in found.failures}
    assert set(failed) == {"accepted#0 write after 0 B"}
    error = failed["accepted#0 write after 0 B"]
    assert isinstance(error, ConnectionResetError)
    assert "faultline sweep: raised in thread 'greeter', which it ended" in error.__notes__


def test_a_thread_that_handles_the_fault_passes(fl: Faultline) -> None:
    found = fl.sweep(lambda: greet_once(careful=True), kinds=["reset"])
    assert found.passed
    assert any(r.sites[0].describe() == "accepted#0 write after 0 B" for r in found.runs)
