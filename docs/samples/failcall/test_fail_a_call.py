"""Pick the hit that fails, and hold a thread at a point."""

from __future__ import annotations

import pytest
from daemon import Client, Daemon

from pytest_faultline import actions


def test_only_the_third_recycle_fails_and_queries_fail_seeded(faultline):
    # [pick-the-hit]
    faultline.arm("daemon.recycle", ConnectionResetError, after=2, times=1)  # only the 3rd hit
    faultline.arm("daemon:Client.query", TimeoutError, probability=0.1)  # ~1 in 10, seeded
    # [/pick-the-hit]
    daemon = Daemon()
    failed = []
    for i in range(5):
        try:
            daemon.recycle()
        except ConnectionResetError:
            failed.append(i)
    assert failed == [2]

    client = Client()
    timeouts = 0
    for _ in range(200):
        try:
            client.query("select 1")
        except TimeoutError:
            timeouts += 1
    assert 0 < timeouts < 60  # about 20; which ones is drawn from the test's seed


@pytest.fixture
def daemon():
    daemon = Daemon()
    yield daemon
    daemon.join()


def test_reset_during_send(faultline, daemon):
    held = faultline.arm("daemon.send", actions.Stall(timeout=5))
    daemon.start_job()
    assert held.wait(1, timeout=5)  # the worker is now parked inside send
    daemon.drop_client()  # do the bad thing while it is parked
    held.release()
    daemon.join()
    assert daemon.sent == []
    assert daemon.kept == [42]
