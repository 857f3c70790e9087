"""Patches restore what was there when they were installed, and compose with other faults."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pytest_faultline.controller import Faultline

LEAK_SEQUENCE = """
import socket

import pytest


def read_once():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    server.close()
    try:
        conn.sendall(b"x" * 100)
        return len(client.recv(100))
    finally:
        client.close()
        conn.close()


@pytest.mark.faultline("partial_read", max_bytes=1)
@pytest.mark.faultline("thread_preemption", runs=2)
def test_a_short_reads_inside_explored_runs():
    assert read_once() == 1


@pytest.mark.faultline("thread_preemption", runs=2)
def test_b_the_scheduler_alone():
    assert read_once() == 100


def test_c_a_plain_test_after_both():
    assert read_once() == 100
"""


def test_a_run_wraps_the_socket_fault_active_now_and_leaks_nothing(
    pytester: pytest.Pytester,
) -> None:
    """The issue's sequence, in a fresh process (the scheduler is first imported while the
    short reads are installed): inside the runs reads are short; afterwards they are not."""
    pytester.makepyfile(test_leak=LEAK_SEQUENCE)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_patches_nest_with_the_clock_and_lock_order(faultline: Faultline) -> None:
    before = (threading.Lock, time.monotonic, time.sleep, socket.socket.recv)
    watcher = faultline.lock_order
    clock = faultline.clock
    during = (threading.Lock, time.monotonic)

    def body() -> None:
        lock = threading.Lock()
        with lock:
            pass

    assert faultline.explore(body, runs=2).passed
    # The run put back the watcher's factory and the clock's function, not the import-time ones.
    assert (threading.Lock, time.monotonic) == during
    assert watcher is not None
    assert clock is not None
    assert threading.Lock is not before[0]
    assert socket.socket.recv is before[3]
    assert "recv" not in vars(socket.socket)  # inherited from _socket.socket: nothing left behind


def test_a_thread_started_by_another_layer_keeps_that_layer(faultline: Faultline) -> None:
    """``Thread.start`` patched by someone else before the run: the run's start calls it."""
    seen: list[str] = []
    previous = threading.Thread.start

    def spying_start(self: threading.Thread) -> None:
        seen.append(self.name)
        previous(self)

    threading.Thread.start = spying_start  # type: ignore[method-assign]
    try:

        def body() -> None:
            t = threading.Thread(target=lambda: None, name="worker")
            t.start()
            t.join()

        assert faultline.explore(body, runs=2).passed
        assert threading.Thread.start is spying_start
    finally:
        threading.Thread.start = previous  # type: ignore[method-assign]
    assert seen.count("worker") == 2  # one per run (the body's own thread is the plugin's)


def test_the_clock_restores_the_timer_it_replaced(faultline: Faultline) -> None:
    class OtherLayersTimer(threading.Timer):
        pass

    previous = threading.Timer
    threading.Timer = OtherLayersTimer  # type: ignore[misc]
    try:
        clock = faultline.clock
        assert threading.Timer is not OtherLayersTimer
        faultline.close()  # the test's teardown: the clock stops
        assert clock.stopped
        assert threading.Timer is OtherLayersTimer
    finally:
        threading.Timer = previous  # type: ignore[misc]
