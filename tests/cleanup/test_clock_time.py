"""The test's clock: time functions follow it, timers fire on advance and not before."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from pathlib import Path

import pytest

from pytest_faultline import FaultlineError
from pytest_faultline._raw import RawEvent
from pytest_faultline.cleanup import ClockTimer, active_clock, set_park_hook
from pytest_faultline.controller import Faultline

BOUND_S = 5.0
NOT_BEFORE_S = 0.3  # a real Timer of 0.05 s would certainly have fired in this long


def test_time_functions_follow_the_clock(faultline: Faultline) -> None:
    clock = faultline.clock
    t0, m0, now0 = time.time(), time.monotonic(), dt.datetime.now()
    assert t0 == clock.time()
    assert now0 == clock.now()
    assert time.time() == t0  # frozen: no wall time passes
    clock.advance(90)
    assert time.time() == t0 + 90
    assert time.monotonic() == m0 + 90
    assert dt.datetime.now() - now0 == dt.timedelta(seconds=90)
    clock.advance(dt.timedelta(milliseconds=250))
    assert time.perf_counter() == pytest.approx(m0 + 90.25)


def test_the_clock_starts_at_the_real_time_and_can_be_set(faultline: Faultline) -> None:
    before = dt.datetime.now(dt.UTC)
    clock = faultline.clock
    assert abs(clock.time() - before.timestamp()) < 60
    clock.set(dt.datetime(2030, 1, 2, 3, 4, 5))
    assert dt.datetime.now() == dt.datetime(2030, 1, 2, 3, 4, 5)
    clock.set(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert time.time() == dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
    assert [e.name for e in faultline.events if e.kind == "clock"] == ["start", "set", "set"]


def test_time_is_real_again_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading, time
        import pytest

        def test_jump(faultline):
            faultline.clock.advance(3600 * 24 * 365)
            assert time.time() > REAL + 3600 * 24 * 300

        def test_after():
            assert abs(time.time() - REAL) < 600
            assert threading.Timer.__module__ == "threading"

        REAL = time.time()
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_timers_fire_on_advance_and_not_before(faultline: Faultline) -> None:
    clock = faultline.clock
    fired = threading.Event()
    seen: list[tuple[str, float]] = []

    def callback() -> None:
        seen.append((threading.current_thread().name, time.time()))
        fired.set()

    start = clock.time()
    timer = threading.Timer(0.05, callback)
    assert isinstance(timer, ClockTimer)
    timer.start()
    assert not fired.wait(NOT_BEFORE_S), "a clock-driven timer fired on wall time"
    clock.advance(0.04)
    assert not fired.is_set()
    clock.advance(0.01)
    assert fired.is_set()  # fired during advance(): no waiting needed
    ((thread, when),) = seen
    assert thread == timer.name  # on the timer's own thread
    assert when == pytest.approx(start + 0.05)  # the callback sees its due time
    timer.join(BOUND_S)
    assert not timer.is_alive()


def test_timers_fire_in_due_order_each_at_its_time(faultline: Faultline) -> None:
    clock = faultline.clock
    start = clock.time()
    seen: list[tuple[str, float]] = []
    for name, delay in [("late", 30), ("early", 10), ("middle", 20)]:
        threading.Timer(delay, lambda n=name: seen.append((n, time.time() - start))).start()
    clock.advance(25)
    assert seen == [("early", 10), ("middle", 20)]
    clock.advance(5)
    assert seen == [("early", 10), ("middle", 20), ("late", 30)]
    assert clock.time() - start == 30


def test_a_periodic_timer_rearms_within_one_advance(faultline: Faultline) -> None:
    clock = faultline.clock
    ticks: list[float] = []
    start = clock.time()

    def tick() -> None:
        ticks.append(time.monotonic() - start)
        if len(ticks) < 10:
            threading.Timer(5, tick).start()

    threading.Timer(5, tick).start()
    clock.advance(22)
    assert ticks == [5, 10, 15, 20]
    assert clock.next_due() == 3


def test_a_cancelled_timer_never_fires(faultline: Faultline) -> None:
    clock = faultline.clock
    fired: list[int] = []
    timer = threading.Timer(1, lambda: fired.append(1))
    timer.start()
    timer.cancel()
    timer.join(BOUND_S)
    clock.advance(10)
    assert fired == []
    assert clock.next_due() is None


def test_timers_left_pending_are_cancelled_and_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading

        FIRED = []
        # Threads other plugins keep (pytest-rerunfailures' server) are there before the tests.
        BEFORE = set(threading.enumerate())

        def test_leaves_a_timer(faultline):
            faultline.clock
            threading.Timer(3600, lambda: FIRED.append(1)).start()
            assert False, "fail to show the report"

        def test_nothing_left():
            assert FIRED == []
            assert [t for t in threading.enumerate() if t not in BEFORE] == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--faultline-report=report.json")
    result.assert_outcomes(failed=1, passed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    (failed,) = [t for t in report["tests"] if t["outcome"] == "failed"]
    cancelled = [e["detail"] for e in failed["events"] if e["name"] == "cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0].startswith("Timer(3600, ")
    assert cancelled[0].endswith(" never fell due")


def test_listeners_hear_every_move_and_next_due_says_how_far(faultline: Faultline) -> None:
    clock = faultline.clock
    heard: list[float] = []
    clock.add_listener(lambda c: heard.append(c.time()))
    assert clock.next_due() is None
    threading.Timer(7, lambda: None).start()
    assert clock.next_due() == 7
    due = clock.next_due()
    assert due is not None
    clock.advance(due)
    assert heard == [clock.time()]
    assert clock.next_due() is None


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (-1, "clock.advance() needs seconds >= 0 (a number or a timedelta), got -1"),
        ("5", "clock.advance() needs seconds >= 0 (a number or a timedelta), got '5'"),
    ],
)
def test_bad_advance_says_what_to_pass(faultline: Faultline, seconds: object, message: str) -> None:
    with pytest.raises(FaultlineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        faultline.clock.advance(seconds)  # type: ignore[arg-type]  # the bad input under test


def test_bad_set_says_what_to_pass(faultline: Faultline) -> None:
    with pytest.raises(FaultlineError, match=r"clock.set\(\) needs a datetime.datetime, got 5"):
        faultline.clock.set(5)  # type: ignore[arg-type]  # the bad input under test


def test_active_clock_does_not_start_one(faultline: Faultline) -> None:
    assert active_clock(faultline) is None
    clock = faultline.clock
    assert active_clock(faultline) is clock


def test_parks_go_through_the_installed_hook(faultline: Faultline) -> None:
    """The thread scheduler makes timer threads and parked workers wait through it."""
    reasons: list[str] = []

    def hook(event: RawEvent, timeout: float, reason: str) -> bool:
        reasons.append(reason)
        return event.wait(timeout)

    previous = set_park_hook(hook)
    try:
        clock = faultline.clock
        fired = threading.Event()
        timer = threading.Timer(1, fired.set)
        timer.start()
        clock.advance(1)
        assert fired.is_set()
        timer.join(BOUND_S)
    finally:
        assert set_park_hook(previous) is hook
    # The timer thread waits for clock time, and the advance waits for its callback: both go
    # through the hook (the timer may poll more than once, in either order with the advance).
    assert set(reasons) == {
        f"{timer.name} waits for clock time",
        f"advance waits for {timer.name}'s callback",
    }


def test_other_threads_see_the_clock_and_bounded_waits_stay_bounded(faultline: Faultline) -> None:
    clock = faultline.clock
    clock.set(dt.datetime(2031, 5, 6, 7, 8, 9))
    seen: list[dt.datetime] = []
    worker = threading.Thread(target=lambda: seen.append(dt.datetime.now()))
    worker.start()
    worker.join(BOUND_S)
    assert seen == [dt.datetime(2031, 5, 6, 7, 8, 9)]  # also on a thread started by threading
    # Waits keep real timeouts, or a frozen clock would make every bounded wait endless.
    assert not threading.Event().wait(0.01)
    with pytest.raises(queue.Empty):
        queue.Queue().get(timeout=0.01)


def test_file_ages_follow_the_clock(faultline: Faultline, tmp_path: Path) -> None:
    """The clock starts at the real time, so a file written during the test has a sensible
    age, and the age grows as the clock advances (incident 000's admin-file check)."""
    clock = faultline.clock
    admin = tmp_path / "admin"
    admin.write_text("alive")
    age = time.time() - admin.stat().st_mtime
    assert -5 < age < 5
    clock.advance(61)
    age = time.time() - admin.stat().st_mtime
    assert 56 < age < 66
