"""The release triggers: a point, a path, clock seconds, release(), the context manager."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cleanup_apps
import pytest
from cleanup_apps import ran_log

from pytest_faultline import actions, point
from pytest_faultline.controller import Faultline

BOUND_S = 5.0
MAIN = threading.main_thread().name


@pytest.fixture(autouse=True)
def _clear_log() -> Iterator[None]:
    ran_log.clear()
    yield
    ran_log.clear()


def fail_cleanup(name: str) -> None:
    raise ValueError(f"cleanup of {name} failed")


def test_until_a_point_releases_each_time_it_is_reached(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.expire_session, until="cleanup.reused")
    cleanup_apps.expire_session("A")
    cleanup_apps.expire_session("A")  # equal arguments: still two calls
    assert len(deferral.pending) == 2
    point("cleanup.reused")
    assert ran_log == [("expired A", MAIN), ("expired A", MAIN)]
    cleanup_apps.expire_session("B")  # still deferring: held until the point again
    assert ran_log == [("expired A", MAIN), ("expired A", MAIN)]
    point("cleanup.reused")
    assert [what for what, _ in ran_log] == ["expired A", "expired A", "expired B"]
    assert [c.index for c in deferral.released] == [1, 2, 3]
    assert {c.trigger for c in deferral.released} == {"until 'cleanup.reused' was reached"}
    assert faultline.hits("cleanup.reused") == 2


def test_whichever_of_until_and_seconds_comes_first(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.expire_session, until="cleanup.reused", seconds=10)
    cleanup_apps.expire_session("A")
    faultline.clock.advance(10)
    cleanup_apps.expire_session("B")
    point("cleanup.reused")
    faultline.clock.advance(10)  # B's seconds pass too: it was released already, runs once
    assert [what for what, _ in ran_log] == ["expired A", "expired B"]
    assert [c.trigger for c in deferral.released] == [
        "10s of clock time passed",
        "until 'cleanup.reused' was reached",
    ]


def test_the_context_manager_releases_on_exit(faultline: Faultline) -> None:
    with faultline.defer(cleanup_apps.expire_session) as deferral:
        cleanup_apps.expire_session("A")
        assert ran_log == []
    assert ran_log == [("expired A", MAIN)]
    assert not deferral.active
    cleanup_apps.expire_session("B")  # after release: runs directly
    assert ran_log == [("expired A", MAIN), ("expired B", MAIN)]
    assert len(deferral.calls) == 1


def test_a_parked_call_that_raises_raises_on_its_own_thread(faultline: Faultline) -> None:
    deferral = faultline.defer(fail_cleanup)
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            fail_cleanup("A")
        except ValueError as exc:
            caught.append(exc)

    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    assert deferral.wait(1, timeout=BOUND_S)
    (call,) = deferral.release()
    thread.join(BOUND_S)
    assert [str(e) for e in caught] == ["cleanup of A failed"]
    assert isinstance(call.error, ValueError)
    (ran,) = [e for e in faultline.events if e.kind == "ran"]
    assert ran.thread == "worker"
    assert "fail_cleanup('A') raised ValueError('cleanup of A failed') on [worker]" in ran.detail


def test_a_held_call_on_another_thread_is_released_by_the_clock_there(faultline: Faultline) -> None:
    """Released by an advance made on a third thread: the parked worker still runs it."""
    deferral = faultline.defer(cleanup_apps.expire_session, seconds=1)
    clock = faultline.clock
    worker = threading.Thread(target=cleanup_apps.expire_session, args=("A",), name="worker")
    worker.start()
    assert deferral.wait(1, timeout=BOUND_S)
    mover = threading.Thread(target=clock.advance, args=(1,), name="mover")
    mover.start()
    mover.join(BOUND_S)
    worker.join(BOUND_S)
    assert ran_log == [("expired A", "worker")]
    release = next(e for e in faultline.events if e.kind == "release")
    assert release.thread == "mover"


def test_a_disconnect_and_a_preemption_inside_the_window(faultline: Faultline) -> None:
    """Other faults fire while a call is held; the call still waits for its own release."""
    seen: list[tuple[str, int]] = []
    faultline.add_handler("disconnect", lambda hit: seen.append(("disconnect", len(ran_log))))
    faultline.add_handler("preempt", lambda hit: seen.append(("preempt", len(ran_log))))
    faultline.arm("cleanup.window", actions.Disconnect(), times=1)
    faultline.arm("cleanup.window", actions.Preempt(), after=1)
    deferral = faultline.defer(cleanup_apps.expire_session, until="cleanup.reused")
    worker = threading.Thread(target=cleanup_apps.expire_session, args=("A",), name="worker")
    worker.start()
    assert deferral.wait(1, timeout=BOUND_S)
    point("cleanup.window")
    point("cleanup.window")
    assert seen == [("disconnect", 0), ("preempt", 0)]  # both inside the window
    point("cleanup.reused")
    worker.join(BOUND_S)
    assert ran_log == [("expired A", "worker")]
    kinds = [e.kind for e in faultline.events]
    assert kinds == ["defer", "hold", "disconnect", "preempt", "until", "release", "ran"]


@pytest.mark.faultline("delayed_cleanup", target="cleanup_apps:expire_session", seconds=5)
def test_the_marker_with_seconds_runs_on_the_clock(faultline: Faultline) -> None:
    cleanup_apps.expire_session("A")
    faultline.clock.advance(4)
    assert ran_log == []
    faultline.clock.advance(1)
    assert ran_log == [("expired A", MAIN)]
