"""The scheduler with the other features: lock-order watching and the test's clock."""

from __future__ import annotations

import importlib
import threading
import time

import pytest

from pytest_faultline.controller import Faultline


def needs(module: str, attr: str) -> None:
    if not hasattr(importlib.import_module(module), attr):
        pytest.skip(f"needs {module}.{attr} (not in this build)")


def test_lock_order_is_watched_inside_explored_runs(faultline: Faultline) -> None:
    needs("pytest_faultline.lockorder", "rechain")
    watcher = faultline.lock_order

    def body() -> None:
        a, b = threading.Lock(), threading.Lock()

        def one() -> None:
            with a, b:
                pass

        def two() -> None:
            with b, a:
                pass

        for target in (one, two):  # one after the other: no schedule can deadlock
            t = threading.Thread(target=target)
            t.start()
            t.join()

    result = faultline.explore(body, runs=3)
    assert result.passed
    assert watcher.inversions, "the inversion inside the run was not seen"


def test_the_scheduler_drives_the_test_clock(faultline: Faultline) -> None:
    needs("pytest_faultline.cleanup", "active_clock")
    clock = faultline.clock  # running before the exploration: its time is the runs' time
    fired: list[float] = []

    def body() -> None:
        fired.clear()
        start = time.monotonic()
        timer = threading.Timer(30, lambda: fired.append(time.monotonic() - start))
        timer.start()
        time.sleep(60)  # every thread asleep: the clock is advanced, the timer fires on the way
        timer.join()
        assert fired == [pytest.approx(30.0)]
        assert time.monotonic() - start == pytest.approx(60.0)

    before = clock.monotonic()
    assert faultline.explore(body, runs=5, stall_timeout=5).passed
    assert clock.monotonic() - before == pytest.approx(5 * 60.0)
