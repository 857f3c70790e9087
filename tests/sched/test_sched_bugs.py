"""The classic concurrency bugs: each is found by the scheduler, and its fix survives every
explored schedule."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pytest_faultline import DeadlockError
from pytest_faultline.controller import Faultline

HERE = __name__  # lines mode traces this module


def run_threads(*targets: Callable[[], object]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


# -- lost update on a plain attribute (needs line-level preemption) --------------------------------


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> None:
        current = self.value
        self.value = current + 1


class LockedCounter(Counter):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def increment(self) -> None:
        with self._lock:
            current = self.value
            self.value = current + 1


def counter_body(cls: type[Counter]) -> Callable[[], None]:
    def body() -> None:
        counter = cls()
        run_threads(counter.increment, counter.increment)
        assert counter.value == 2, f"lost update: {counter.value}"

    return body


def test_lost_update_found_with_line_preemption(faultline: Faultline) -> None:
    with pytest.raises(AssertionError, match="lost update: 1") as info:
        faultline.explore(counter_body(Counter), runs=200, preempt="lines", modules=[HERE])
    report = notes(info.value)
    assert "token: fl1." in report
    assert "test_sched_bugs.py:37 current = self.value" in report
    assert "1 preemption(s)" in report


def test_lost_update_fixed_survives_every_schedule(faultline: Faultline) -> None:
    result = faultline.explore(
        counter_body(LockedCounter),
        runs=2000,
        strategy="dfs",
        max_preemptions=2,
        preempt="lines",
        modules=[HERE],
    )
    assert result.passed, result.summary()
    assert result.exhausted, result.summary()


def test_lost_update_not_seen_without_line_preemption(faultline: Faultline) -> None:
    # No scheduling point between the read and the write: sync mode cannot split them.
    result = faultline.explore(counter_body(Counter), runs=300, strategy="dfs")
    assert result.passed
    assert result.exhausted


# -- check-then-act on a dict: enumerate under the lock, delete later (incident 003) ---------------


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items = {"a": "stale", "b": "fresh", "c": "stale"}

    def purge(self) -> None:
        with self.lock:
            stale = [k for k, v in self.items.items() if v == "stale"]
        for key in stale:
            with self.lock:
                del self.items[key]


class FixedRegistry(Registry):
    def purge(self) -> None:
        with self.lock:
            stale = [k for k, v in self.items.items() if v == "stale"]
            for key in stale:
                del self.items[key]


def registry_body(cls: type[Registry]) -> Callable[[], None]:
    def body() -> None:
        registry = cls()
        run_threads(registry.purge, registry.purge)
        assert registry.items == {"b": "fresh"}

    return body


def test_check_then_act_on_dict_found(faultline: Faultline) -> None:
    with pytest.raises(KeyError) as info:
        faultline.explore(registry_body(Registry), runs=200)
    report = notes(info.value)
    assert "raised in T" in report
    assert "release Registry.lock (L1)" in report


def test_check_then_act_fixed_survives_every_schedule(faultline: Faultline) -> None:
    result = faultline.explore(
        registry_body(FixedRegistry), runs=5000, strategy="dfs", max_preemptions=2
    )
    assert result.passed
    assert result.exhausted


# -- ABBA deadlock ---------------------------------------------------------------------------------


def abba_body(inverted: bool) -> Callable[[], None]:
    def body() -> None:
        first = threading.Lock()
        second = threading.Lock()

        def forward() -> None:
            with first, second:
                pass

        def backward() -> None:
            a, b = (second, first) if inverted else (first, second)
            with a, b:
                pass

        run_threads(forward, backward)

    return body


def test_abba_deadlock_reported_as_cycle(faultline: Faultline) -> None:
    with pytest.raises(DeadlockError) as info:
        faultline.explore(abba_body(inverted=True), runs=200)
    message = str(info.value)
    # Locks are named as lock-order reports name them, with a short id.
    assert (
        "wait-for cycle: T1 holds first (L1) waits second (L2); "
        "T2 holds second (L2) waits first (L1)"
    ) in message
    assert "first (L1) = Lock created at tests/sched/test_sched_bugs.py:" in message
    assert "in forward: with first, second:" in message  # each thread's stack
    assert "1 preemption(s)" in notes(info.value)


def test_abba_fixed_order_survives_every_schedule(faultline: Faultline) -> None:
    result = faultline.explore(
        abba_body(inverted=False), runs=5000, strategy="dfs", max_preemptions=2
    )
    assert result.passed
    assert result.exhausted


# -- lost wakeup -----------------------------------------------------------------------------------


def wakeup_body(fixed: bool) -> Callable[[], None]:
    def body() -> None:
        cond = threading.Condition()
        state = {"ready": False}

        def consumer() -> None:
            if fixed:
                with cond:
                    cond.wait_for(lambda: state["ready"])
            elif not state["ready"]:
                with cond:
                    cond.wait()

        def producer() -> None:
            if fixed:
                with cond:
                    state["ready"] = True
                    cond.notify()
            else:
                state["ready"] = True
                with cond:
                    cond.notify()

        run_threads(consumer, producer)

    return body


def test_lost_wakeup_reported(faultline: Faultline) -> None:
    with pytest.raises(DeadlockError) as info:
        faultline.explore(wakeup_body(fixed=False), runs=200, preempt="lines", modules=[HERE])
    message = str(info.value)
    assert (
        "lost wakeup: T1 waits cond (C1) (wait) and no running thread is left to wake it" in message
    )
    assert "cond (C1) = Condition created at tests/sched/test_sched_bugs.py:" in message


def test_lost_wakeup_fixed_survives_every_schedule(faultline: Faultline) -> None:
    result = faultline.explore(
        wakeup_body(fixed=True),
        runs=5000,
        strategy="dfs",
        max_preemptions=2,
        preempt="lines",
        modules=[HERE],
    )
    assert result.passed
    assert result.exhausted


# -- double lazy initialisation --------------------------------------------------------------------


class LazyConnection:
    def __init__(self) -> None:
        self._conn: object | None = None
        self.opened = 0
        self._lock = threading.Lock()

    def _open(self) -> object:
        self.opened += 1
        return object()

    def get(self) -> object:
        if self._conn is None:
            self._conn = self._open()
        return self._conn


class LockedLazyConnection(LazyConnection):
    def get(self) -> object:
        if self._conn is None:
            with self._lock:
                if self._conn is None:
                    self._conn = self._open()
        return self._conn


def lazy_body(cls: type[LazyConnection]) -> Callable[[], None]:
    def body() -> None:
        lazy = cls()
        got: list[object] = []
        run_threads(lambda: got.append(lazy.get()), lambda: got.append(lazy.get()))
        assert lazy.opened == 1, f"opened {lazy.opened} connections"
        assert got[0] is got[1]

    return body


def test_double_lazy_init_found(faultline: Faultline) -> None:
    with pytest.raises(AssertionError, match="opened 2 connections"):
        faultline.explore(lazy_body(LazyConnection), runs=200, preempt="lines", modules=[HERE])


def test_double_lazy_init_fixed_survives_every_schedule(faultline: Faultline) -> None:
    result = faultline.explore(
        lazy_body(LockedLazyConnection),
        runs=5000,
        strategy="dfs",
        max_preemptions=2,
        preempt="lines",
        modules=[HERE],
    )
    assert result.passed
    assert result.exhausted
