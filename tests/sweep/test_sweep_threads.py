"""The sweep's thread kinds: with ``preempt`` or ``preempt_step`` the body runs under the thread
scheduler without preemptions of its own (a coroutine function: on the controlled event loop in
asyncio's own order), every scheduling point where another thread (task) could run is a site,
and one switch is forced at each. Found without being told where: a lock-order deadlock, a
check-then-act on ``queue.Queue``, a reader whose buffer is replaced under it, and a cleanup
task that removes a reconnected session; the correct versions survive every site, and each
failing run replays from its token."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Iterator

import pytest

from pytest_faultline import _points, point
from pytest_faultline.controller import Faultline
from pytest_faultline.decider import ReplayToken
from pytest_faultline.sched import runtime

JOIN_S = 5.0


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=11, nodeid="tests/sweep/test_x.py::test_x")
    yield controller
    controller.close()


def transfer_both_ways(ordered: bool) -> None:
    """Two threads each move money between two accounts, each account behind its own lock; the
    naive code locks the source first (so the two threads take the locks in opposite orders),
    the careful code always the lower account first."""
    locks = {"a": threading.Lock(), "b": threading.Lock()}
    balance = {"a": 100, "b": 100}

    def move(src: str, dst: str) -> None:
        first, second = sorted((src, dst)) if ordered else (src, dst)
        with locks[first], locks[second]:
            balance[src] -= 10
            balance[dst] += 10

    threads = [
        threading.Thread(target=move, args=("a", "b"), name="a-to-b"),
        threading.Thread(target=move, args=("b", "a"), name="b-to-a"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)  # virtual seconds under the scheduler
    stuck = [t.name for t in threads if t.is_alive()]
    assert stuck == [], f"deadlocked: {stuck} never finished"
    assert balance == {"a": 100, "b": 100}


def test_preempt_finds_the_lock_order_deadlock(fl: Faultline) -> None:
    found = fl.sweep(lambda: transfer_both_ways(ordered=False), kinds=["preempt"], raises=False)
    assert found.complete
    assert found.failures, found.report()
    first = found.failures[0]
    assert isinstance(first.failure, AssertionError), found.report()
    assert "deadlocked: ['a-to-b', 'b-to-a'] never finished" in str(first.failure)
    (site,) = first.sites
    # The first thread was switched away from while it held one lock and wanted the other.
    assert site.where == "thread"
    assert site.op == "T1 (a-to-b)"
    assert site.name.startswith("acquire "), site
    assert all(run.reproducible for run in found.failures), found.report()
    report = found.report()
    assert "T1 (a-to-b) acquire" in report
    assert "FAIL preempt at T1 (a-to-b) acquire locks (L2) #1" in report


def test_ordered_locks_survive_every_preemption(fl: Faultline) -> None:
    found = fl.sweep(lambda: transfer_both_ways(ordered=True), kinds=["preempt", "preempt_step"])
    assert found.passed
    assert found.complete
    assert len(found.runs) >= 10  # a real space: both threads' acquires, releases, joins
    assert {s.where for s in found.sites} >= {"thread"}


def drain(careful: bool) -> None:
    """Two consumers take the one item of a ``queue.Queue``; the naive one checks ``empty()``
    and then takes without waiting, the careful one takes and handles ``queue.Empty``."""
    jobs: queue.Queue[int] = queue.Queue()
    jobs.put(1)
    taken: list[int] = []
    errors: list[str] = []

    def consume() -> None:
        try:
            if careful:
                with contextlib.suppress(queue.Empty):  # the other consumer may take it first
                    taken.append(jobs.get_nowait())
            elif not jobs.empty():
                taken.append(jobs.get_nowait())
        except queue.Empty:
            errors.append("queue.Empty after empty() said there was an item")

    threads = [threading.Thread(target=consume, name=f"consumer-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
    assert errors == []
    assert taken == [1]


@pytest.mark.parametrize(
    "careful",
    [
        True,
        pytest.param(
            False,
            marks=pytest.mark.xfail(
                strict=True, raises=AssertionError, reason="empty() then get_nowait() is racy"
            ),
        ),
    ],
)
def test_check_then_act_on_a_stdlib_queue(fl: Faultline, careful: bool) -> None:
    fl.sweep(lambda: drain(careful), kinds=["preempt"])


def replaced_under_the_reader(safe: bool) -> None:
    """A reader takes the current buffer and sums it after a fault point; the writer publishes,
    wakes the reader, then replaces the buffer. The naive writer clears the old one in place (a
    free), the safe one leaves it to the reader. Only a window of one step of the reader, opened
    at the writer's ``set``, lets the writer free the buffer the reader holds."""
    box = {"buf": [1, 2, 3]}
    waiting, ready = threading.Event(), threading.Event()
    sums: list[int] = []

    def reader() -> None:
        waiting.set()
        ready.wait(JOIN_S)
        held = box["buf"]
        point("reader.holding")
        sums.append(sum(held))

    thread = threading.Thread(target=reader, name="reader")
    thread.start()
    waiting.wait(JOIN_S)
    ready.set()
    old, box["buf"] = box["buf"], [4, 5, 6]
    if not safe:
        old.clear()
    thread.join(JOIN_S)
    assert sums in ([6], [15]), f"the reader summed a freed buffer: {sums}"


def test_preempt_step_opens_a_window_preempt_does_not(fl: Faultline) -> None:
    whole = fl.sweep(lambda: replaced_under_the_reader(safe=False), kinds=["preempt"])
    assert whole.passed, whole.report()  # the reader always runs to its end: no window
    found = fl.sweep(
        lambda: replaced_under_the_reader(safe=False), kinds=["preempt_step"], raises=False
    )
    assert found.failures, found.report()
    (site,) = found.failures[0].sites
    assert (site.op, site.name) == ("T0 (main)", "set ready (E2)")
    assert "the reader summed a freed buffer" in found.failures[0].error_text()
    fine = fl.sweep(lambda: replaced_under_the_reader(safe=True), kinds=["preempt_step"])
    assert fine.passed


def test_a_token_replays_the_one_preemption() -> None:
    first = Faultline(seed=5, nodeid="t")
    try:
        found = first.sweep(
            lambda: transfer_both_ways(ordered=False), kinds=["preempt"], raises=False
        )
    finally:
        first.close()
    token = found.failures[0].token
    again = Faultline(seed=99, nodeid="t", token=ReplayToken.decode(token))
    try:
        with pytest.raises(AssertionError, match="deadlocked"):
            again.sweep(lambda: transfer_both_ways(ordered=False), kinds=["preempt"])
        assert again.token() == token
    finally:
        again.close()


def test_thread_kinds_leave_no_scheduler_or_observer_behind(fl: Faultline) -> None:
    fl.sweep(lambda: transfer_both_ways(ordered=False), kinds=["preempt"], raises=False)
    assert runtime.active() is None
    assert _points._observer is None
    assert "faultline" not in repr(threading.Lock())


def test_thread_kinds_apply_only_at_thread_sites(fl: Faultline) -> None:
    def body() -> None:
        point("single.threaded")

    found = fl.sweep(body, kinds=["preempt", "raise"], raises=False)
    assert [s.describe() for s in found.sites] == ["point single.threaded #1"]
    # The summary says why nothing was preempted (a note: swept session-wide, most tests run
    # one thread, so no warning).
    assert "no thread site: preempt found no place where another thread or task could run" in (
        found.summary()
    )
    # Nothing else could run there: no thread site, so only the raise was planned.
    assert found.planned_singles == 1


# -- asyncio tasks -------------------------------------------------------------------------------


async def reconnect(careful: bool) -> None:
    """A client drops and comes back at once: the drop's cleanup task removes the old session;
    the naive cleanup removes whatever session the client has by then."""
    sessions = {"alice": "old"}

    async def cleanup() -> None:
        if careful:
            if sessions.get("alice") == "old":
                del sessions["alice"]
        else:
            sessions.pop("alice", None)

    task = asyncio.create_task(cleanup())
    await asyncio.sleep(0)  # plain asyncio runs the cleanup here, first in line
    sessions["alice"] = "new"
    await task
    assert sessions.get("alice") == "new", "the reconnected client lost its session"


def test_a_coroutine_function_is_swept_over_task_orders(fl: Faultline) -> None:
    async def naive() -> None:
        await reconnect(careful=False)

    found = fl.sweep(naive, kinds=["preempt"], raises=False)
    # The recording run is asyncio's own order (the cleanup first): it passes. One switch at the
    # sleep lets the reconnect run first, and the cleanup removes the new session.
    assert [run.outcome for run in found.runs].count("fail") == 1, found.report()
    (failing,) = found.failures
    assert "the reconnected client lost its session" in failing.error_text()
    assert failing.reproducible
    assert all(site.name == "await" for site in found.sites)

    async def careful() -> None:
        await reconnect(careful=True)

    assert fl.sweep(careful, kinds=["preempt", "preempt_step"]).passed


def test_a_body_returning_a_coroutine_is_swept_over_task_orders(fl: Faultline) -> None:
    # What the fault_sweep scenario hands the sweep for an async def test.
    found = fl.sweep(lambda: reconnect(careful=False), kinds=["preempt"], raises=False)
    assert len(found.failures) == 1, found.report()
