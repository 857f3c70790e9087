"""Virtual time reaches clocks bound at import: ``from time import monotonic`` and
``timer=time.monotonic`` default arguments, in the test module and in modules named."""

from __future__ import annotations

import threading
import time
from time import monotonic as bound_monotonic

import pytest

from pytest_faultline import FaultlineError
from pytest_faultline.controller import Faultline


class Lease:
    """Expires ``ttl`` seconds after it was taken, by a clock given as a default argument."""

    def __init__(self, ttl: float, timer: object = time.monotonic) -> None:
        self.timer = timer
        self.until = self.now() + ttl

    def now(self) -> float:
        assert callable(self.timer)
        return float(self.timer())

    @property
    def expired(self) -> bool:
        return self.now() >= self.until


def waited() -> float:
    start = bound_monotonic()
    time.sleep(3600)  # virtual: costs nothing
    return bound_monotonic() - start


def test_a_name_imported_from_time_reads_virtual_time(faultline: Faultline) -> None:
    seen: list[float] = []

    def body() -> None:
        seen.append(waited())

    assert faultline.explore(body, runs=2).passed
    assert seen
    assert seen == [pytest.approx(3600.0)] * len(seen)
    assert bound_monotonic is time.monotonic  # put back after the runs


def test_a_default_argument_clock_reads_virtual_time(faultline: Faultline) -> None:
    def body() -> None:
        lease = Lease(ttl=30)
        done = threading.Event()

        def expire_later() -> None:
            time.sleep(31)
            done.set()

        t = threading.Thread(target=expire_later)
        t.start()
        done.wait()
        t.join()
        assert lease.expired

    assert faultline.explore(body, runs=5).passed
    assert Lease.__init__.__defaults__ == (time.monotonic,)


def test_modules_named_in_rebind_are_reached(faultline: Faultline) -> None:
    cachetools = pytest.importorskip("cachetools")

    def body() -> None:
        cache = cachetools.TTLCache(maxsize=10, ttl=60)  # timer=time.monotonic bound at import
        cache["k"] = 1
        time.sleep(61)
        assert "k" not in cache

    assert faultline.explore(body, runs=3, rebind=["cachetools"]).passed


def test_rebind_names_an_unknown_module_clearly(faultline: Faultline) -> None:
    with pytest.raises(
        FaultlineError, match=r"cannot import module 'no_such_mod' named in rebind="
    ):
        faultline.explore(lambda: None, rebind=["no_such_mod"])
    with pytest.raises(FaultlineError, match=r"rebind must be a list of module names"):
        faultline.explore(lambda: None, rebind="cachetools")
