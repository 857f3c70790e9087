"""Strategies, replay tokens, shrinking, stalls and the options of ``explore``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from pytest_faultline import DeadlockError, FaultlineError, ReplayTokenError, _raw
from pytest_faultline.controller import Faultline

SYNC_EXHAUSTIVE = "exhaustive at sync granularity (switches only at synchronisation operations)"


def racy_body(order: list[str] | None = None) -> Callable[[], None]:
    """Two writers racing on a shared box through a lock-free read-then-write."""

    def body() -> None:
        box = {"n": 0}
        lock = threading.Lock()

        def bump(name: str) -> None:
            for _ in range(2):
                with lock:
                    n = box["n"]
                    if order is not None:
                        order.append(f"{name} read {n}")
                with lock:
                    box["n"] = n + 1

        threads = [threading.Thread(target=bump, args=(name,)) for name in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box["n"] == 4

    return body


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_every_strategy_finds_the_race(faultline: Faultline, strategy: str) -> None:
    with pytest.raises(AssertionError) as info:
        faultline.explore(racy_body(), runs=500, strategy=strategy)
    assert f"(of up to 500, {strategy}," in notes(info.value)


def test_token_replays_the_same_interleaving_100_of_100(faultline: Faultline) -> None:
    first: list[str] = []
    with pytest.raises(AssertionError) as info:
        faultline.explore(racy_body(first), runs=500, strategy="random")
    token = info.value.faultline_exploration.token  # type: ignore[attr-defined]
    assert token is not None
    assert faultline.token() == token

    recorded: list[str] = []
    with pytest.raises(AssertionError):
        faultline.replay(racy_body(recorded), token)
    for _ in range(100):
        again: list[str] = []
        with pytest.raises(AssertionError):
            faultline.replay(racy_body(again), token)
        assert again == recorded
    assert any(r.startswith("b") for r in recorded[: len(recorded) // 2])  # really interleaved


def test_dfs_exhausts_a_small_space_and_counts_it(faultline: Faultline) -> None:
    def body() -> None:
        lock = threading.Lock()

        def work() -> None:
            with lock:
                pass

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    counts = [
        faultline.explore(body, runs=10_000, strategy="dfs", max_preemptions=bound)
        for bound in (0, 1)
    ]
    assert [r.exhausted for r in counts] == [True, True]
    assert [r.schedules for r in counts] == [3, 21]
    assert [e.detail for e in faultline.events] == [
        "explored all 3 schedules (dfs): no failure, " + SYNC_EXHAUSTIVE,
        "explored all 21 schedules (dfs): no failure, " + SYNC_EXHAUSTIVE,
    ]
    # Same space, same count, every time: the search is deterministic.
    assert faultline.explore(body, runs=10_000, strategy="dfs", max_preemptions=1).schedules == 21


def test_shrinking_reduces_preemptions(faultline: Faultline) -> None:
    with pytest.raises(AssertionError) as info:
        faultline.explore(racy_body(), runs=500, strategy="random")
    found = info.value.faultline_exploration  # type: ignore[attr-defined]
    assert found.found_preemptions > found.preemptions == 1
    assert found.shrink_runs > 0
    assert "to 1 preemption(s); the replay failed the same way twice" in notes(info.value)


def test_thread_blocked_outside_the_scheduler_is_reported_not_hung(faultline: Faultline) -> None:
    real_lock = _raw.allocate_lock()
    real_lock.acquire()
    threads: list[threading.Thread] = []

    def body() -> None:
        def stuck() -> None:
            real_lock.acquire(True, 30)  # a C-level wait the scheduler cannot see

        t = threading.Thread(target=stuck, name="stuck-in-c")
        threads.append(t)
        t.start()
        t.join()

    started = _raw.monotonic()
    try:
        with pytest.raises(DeadlockError) as info:
            faultline.explore(body, runs=5, stall_timeout=1.0)
    finally:
        real_lock.release()
        for t in threads:
            t.join(10)
    message = str(info.value)
    assert "T1 (stuck-in-c) did not come back to the scheduler within 1 s" in message
    assert "in stuck: real_lock.acquire(True, 30)" in message
    assert _raw.monotonic() - started < 20  # reported at the bound, long before the 30 s wait


def test_uncontrolled_nondeterminism_is_reported_without_a_token(faultline: Faultline) -> None:
    calls = {"n": 0}

    def body() -> None:
        calls["n"] += 1  # state kept across runs: the scheduler does not control it
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        assert calls["n"] != 3

    with pytest.raises(AssertionError) as info:
        faultline.explore(body, runs=10, strategy="random")
    found = info.value.faultline_exploration  # type: ignore[attr-defined]
    assert not found.reproducible
    assert found.token is None
    assert "did NOT reproduce" in notes(info.value)
    assert "replay 1 of the same schedule passed" in notes(info.value)


def test_budget_stops_the_search(faultline: Faultline) -> None:
    def body() -> None:
        t = threading.Thread(target=time.sleep, args=(0,))
        t.start()
        t.join()

    result = faultline.explore(body, runs=10**6, budget=0.2)
    assert result.passed
    assert 1 <= result.schedules < 10**6
    assert "stopped by the 0.2 s budget" in result.notes


def test_endless_loop_is_stopped_at_max_steps(faultline: Faultline) -> None:
    def body() -> None:
        while True:
            time.sleep(1)

    with pytest.raises(FaultlineError, match="did not finish within 500 scheduling steps"):
        faultline.explore(body, runs=1, max_steps=500)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "bfs"}, "unknown strategy 'bfs'; use one of 'random', 'pct', 'dfs'"),
        ({"runs": 0}, "runs must be a whole number >= 1, got 0"),
        ({"depth": 0}, "depth must be a whole number >= 1"),
        ({"max_preemptions": -1}, "max_preemptions must be a whole number >= 0 or None"),
        ({"preempt": "ops"}, "preempt must be 'sync'"),
        ({"preempt": "lines"}, "preempt='lines' needs modules=['pkg.mod', ...]"),
        ({"modules": ["no_such_module_xyz"]}, "cannot import module 'no_such_module_xyz'"),
        ({"stall_timeout": 0}, "stall_timeout must be seconds > 0"),
    ],
)
def test_bad_options_say_what_to_fix(
    faultline: Faultline, options: dict[str, object], message: str
) -> None:
    with pytest.raises(FaultlineError) as info:
        faultline.explore(lambda: None, **options)
    assert message in str(info.value)


def test_bad_token_is_rejected_before_running(faultline: Faultline) -> None:
    ran: list[int] = []
    with pytest.raises(ReplayTokenError, match="malformed replay token"):
        faultline.replay(lambda: ran.append(1), "not-a-token")
    assert ran == []


def test_a_body_without_choice_points_runs_once(faultline: Faultline) -> None:
    runs: list[int] = []
    result = faultline.explore(lambda: runs.append(1), runs=100)
    assert runs == [1]
    assert result.exhausted
    assert result.summary() == "explored all 1 schedules (random): no failure, " + SYNC_EXHAUSTIVE
