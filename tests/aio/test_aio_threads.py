"""Tasks and threads in one run: threads started from async code (``asyncio.to_thread``,
``run_in_executor``, ``Thread.start``) run under the thread scheduler with the same decider as
the tasks, so one token replays both."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import re
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from pytest_faultline import DeadlockError, Faultline

pytest_plugins = ["pytester"]

Body = Callable[[], Coroutine[Any, Any, None]]
RUNS = 200
HARD_RUNS = 1000  # the pool race needs more schedules (median 30-50)


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def task_and_thread_update(naive: bool) -> Body:
    """A counter bumped by a task and by an ``asyncio.to_thread`` worker. The worker reads,
    sleeps (a scheduling point) and writes under a lock; the naive task reads, awaits and
    writes back without the lock, so the worker's increment can be lost."""

    async def body() -> None:
        state = {"n": 0}
        lock = threading.Lock()

        def worker_bump() -> None:
            with lock:
                seen = state["n"]
                time.sleep(0)
                state["n"] = seen + 1

        async def task_bump() -> None:
            if naive:
                seen = state["n"]
                await asyncio.sleep(0)
                state["n"] = seen + 1
            else:
                with lock:  # no await inside: the worker cannot slip in
                    state["n"] += 1

        await asyncio.gather(asyncio.to_thread(worker_bump), task_bump())
        assert state["n"] == 2, f"lost update: {state['n']}"

    return body


def pool_update(naive: bool, *, with_block: bool = True) -> Body:
    """The same race through ``loop.run_in_executor`` and a ThreadPoolExecutor made in the
    body: two jobs and a task add to a balance."""

    async def body() -> None:
        account = {"balance": 0}
        lock = threading.Lock()

        def deposit(amount: int) -> None:
            if naive:
                seen = account["balance"]
                time.sleep(0)
                account["balance"] = seen + amount
            else:
                with lock:
                    account["balance"] += amount

        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        try:
            await asyncio.gather(
                loop.run_in_executor(pool, deposit, 10),
                loop.run_in_executor(pool, deposit, 5),
            )
        finally:
            if with_block:
                pool.shutdown(wait=True)
        assert account["balance"] == 15, f"lost deposit: {account['balance']}"

    return body


@pytest.mark.xfail(strict=True, raises=AssertionError)
def test_task_and_to_thread_lost_update_naive(faultline: Faultline) -> None:
    faultline.explore(task_and_thread_update(naive=True), runs=RUNS)


def test_task_and_to_thread_lost_update_fixed(faultline: Faultline) -> None:
    before = _threads()
    found = faultline.explore(task_and_thread_update(naive=False), runs=RUNS)
    assert found.passed
    assert found.schedules == RUNS
    assert _threads() == before


def test_the_report_shows_tasks_and_threads(faultline: Faultline) -> None:
    found = faultline.explore(task_and_thread_update(naive=True), runs=RUNS, raises=False)
    assert type(found.failure) is AssertionError
    assert "lost update: 1" in str(found.failure)
    assert "T0 (main)" in found.report
    assert "thread T1 (asyncio_0)" in found.report  # the default executor's worker
    assert found.token is not None
    assert found.uncontrolled == []


def test_one_token_replays_tasks_and_threads_100_of_100(faultline: Faultline) -> None:
    body = task_and_thread_update(naive=True)
    found = faultline.explore(body, runs=RUNS, raises=False)
    assert found.failure is not None
    assert found.token is not None
    schedule = [(s.thread, s.op, s.site) for s in found.steps]
    assert any(op.startswith("resume") for _, op, _ in schedule)  # task steps
    assert any("time.sleep" in op or "sleep" in op for _, op, _ in schedule)  # thread steps
    before = _threads()
    for _ in range(100):
        again = faultline.replay(body, found.token, raises=False)
        assert type(again.failure) is AssertionError
        assert str(again.failure).startswith(str(found.failure).splitlines()[0])
        assert [(s.thread, s.op, s.site) for s in again.steps] == schedule
    assert _threads() == before


@pytest.mark.xfail(strict=True, raises=AssertionError)
def test_run_in_executor_pool_made_in_the_body_naive(faultline: Faultline) -> None:
    faultline.explore(pool_update(naive=True), runs=HARD_RUNS)


def test_run_in_executor_pool_made_in_the_body_fixed(faultline: Faultline) -> None:
    before = _threads()
    assert faultline.explore(pool_update(naive=False), runs=RUNS).passed
    assert _threads() == before


def test_a_pool_the_body_leaves_up_is_shut_down(faultline: Faultline) -> None:
    """No shutdown in the body: the run's cleanup shuts the pool down, no worker leaks."""
    before = _threads()
    assert faultline.explore(pool_update(naive=False, with_block=False), runs=50).passed
    assert _threads() == before


def test_clean_code_has_no_false_alarm(faultline: Faultline) -> None:
    async def body() -> None:
        def square(x: int) -> int:
            return x * x

        results = await asyncio.gather(*(asyncio.to_thread(square, i) for i in range(4)))
        assert results == [0, 1, 4, 9]

    before = _threads()
    found = faultline.explore(body, runs=RUNS)
    assert found.passed
    assert _threads() == before


def test_loop_timers_and_thread_sleeps_share_one_virtual_time(faultline: Faultline) -> None:
    """A task sleeping 1 s and a thread sleeping 2 s: always the task first, in no real time."""

    async def body() -> None:
        order: list[str] = []
        loop = asyncio.get_running_loop()
        start = loop.time()

        def slow() -> None:
            time.sleep(2.0)
            order.append("thread")

        async def fast() -> None:
            await asyncio.sleep(1.0)
            order.append("task")

        await asyncio.gather(asyncio.to_thread(slow), fast())
        assert order == ["task", "thread"]
        assert loop.time() - start >= 2.0

    assert faultline.explore(body, runs=50).passed


def test_to_thread_reads_a_real_file(faultline: Faultline, tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    path.write_text("alpha\nbeta\n")

    async def body() -> None:
        text, lines = await asyncio.gather(
            asyncio.to_thread(path.read_text),
            asyncio.to_thread(lambda: path.read_text().splitlines()),
        )
        assert text.startswith("alpha")
        assert lines == ["alpha", "beta"]

    assert faultline.explore(body, runs=50).passed


def queue_pipeline(naive: bool) -> Body:
    """A producer thread feeds a ``queue.Queue``; a task drains it with ``to_thread(q.get)``.
    The naive consumer drains "what is there" (until the queue looks empty) and stops early
    when the producer is slower than it; the fixed one reads until the producer's sentinel."""

    async def body() -> None:
        q: queue.Queue[int | None] = queue.Queue()
        got: list[int] = []

        def produce() -> None:
            for item in (1, 2, 3):
                q.put(item)
            q.put(None)  # the end

        producer = threading.Thread(target=produce, name="producer")
        producer.start()
        if naive:
            while not q.empty():
                item = await asyncio.to_thread(q.get)
                if item is not None:
                    got.append(item)
        else:
            while (item := await asyncio.to_thread(q.get)) is not None:
                got.append(item)
        await asyncio.to_thread(producer.join)
        assert got == [1, 2, 3], f"got {got}"

    return body


@pytest.mark.xfail(strict=True, raises=AssertionError)
def test_queue_fed_by_a_thread_drained_by_a_task_naive(faultline: Faultline) -> None:
    faultline.explore(queue_pipeline(naive=True), runs=RUNS)


def test_queue_fed_by_a_thread_drained_by_a_task_fixed(faultline: Faultline) -> None:
    before = _threads()
    assert faultline.explore(queue_pipeline(naive=False), runs=RUNS).passed
    assert _threads() == before


def test_a_task_waiting_on_a_thread_that_never_finishes_is_a_deadlock(
    faultline: Faultline,
) -> None:
    async def body() -> None:
        q: queue.Queue[int] = queue.Queue()
        await asyncio.to_thread(q.get)  # nothing ever puts

    with pytest.raises(DeadlockError, match="deadlock: every managed thread is blocked"):
        faultline.explore(body, runs=5)


def test_an_executor_made_before_the_run_is_named_as_uncontrolled(faultline: Faultline) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pool.submit(int).result()  # its thread exists before the run: the scheduler cannot manage it

    async def body() -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(pool, int, "7") == 7

    try:
        found = faultline.explore(body, runs=3)
    finally:
        pool.shutdown(wait=True)
    assert found.passed
    assert len(found.uncontrolled) == 1
    assert "ThreadPoolExecutor made before the run" in found.uncontrolled[0]
    assert "make the executor inside the explored body" in found.uncontrolled[0]
    assert any(e.name == "uncontrolled" for e in faultline.events)


SCENARIO = """
import asyncio, threading, time
import pytest

async def scenario(fixed):
    state = {"n": 0}
    lock = threading.Lock()

    def worker():
        with lock:
            seen = state["n"]
            time.sleep(0)
            state["n"] = seen + 1

    async def task():
        if fixed:
            with lock:
                state["n"] += 1
            return
        seen = state["n"]
        await asyncio.sleep(0)
        state["n"] = seen + 1

    await asyncio.gather(asyncio.to_thread(worker), task())
    assert state["n"] == 2

@pytest.mark.faultline("task_interleaving", runs=500)
async def test_naive():
    await scenario(fixed=False)

@pytest.mark.faultline("task_interleaving", runs=100)
async def test_fixed():
    await scenario(fixed=True)
"""


def test_scenario_explores_and_replays_tasks_and_threads(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mixed=SCENARIO)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:asyncio")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*--faultline-replay=fl1.*", "*thread T1 (asyncio_0)*"])
    token = re.search(r"--faultline-replay=(fl1\.\S+)", result.stdout.str())
    assert token is not None
    replayed = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:asyncio", f"--faultline-replay={token[1]}", "-k", "naive"
    )
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*the schedule replayed from its token failed*"])


WITH_PYTEST_ASYNCIO = (
    SCENARIO.replace(
        '@pytest.mark.faultline("task_interleaving", runs=500)',
        '@pytest.mark.asyncio\n@pytest.mark.faultline("task_interleaving", runs=500)',
    )
    + """

@pytest.mark.asyncio
async def test_other_asyncio_tests_still_get_threads():
    assert await asyncio.to_thread(lambda: 41 + 1) == 42

def test_no_thread_of_a_run_is_left():
    names = sorted(t.name for t in threading.enumerate() if t.is_alive())
    assert not [n for n in names if n.startswith(("asyncio_", "faultline-run"))], names
"""
)


def test_scenario_with_threads_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    """pytest-asyncio runs the test on faultline's loop, which outlives each run: its default
    executor is shut down at the end of every run and a fresh one made by the next."""
    pytester.makepyfile(test_mixed=WITH_PYTEST_ASYNCIO)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=3)
    result.stdout.fnmatch_lines(["*test_naive*", "*thread T1 (asyncio_0)*"])


POOL_DECISIONS = """
import asyncio, concurrent.futures, time
from pytest_faultline.controller import Faultline

async def body():
    account = {"balance": 0}

    def deposit(amount):
        seen = account["balance"]
        time.sleep(0)
        account["balance"] = seen + amount

    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        await asyncio.gather(
            loop.run_in_executor(pool, deposit, 10), loop.run_in_executor(pool, deposit, 5)
        )

fl = Faultline(seed=5, nodeid="determinism")
try:
    found = fl.explore(body, runs=20, strategy="pct", raises=False, shrink=False)
finally:
    fl.close()
print("DECISIONS", found.schedules, found.decisions)
"""


def test_a_pool_of_two_workers_makes_the_same_choices_in_every_process(
    pytester: pytest.Pytester,
) -> None:
    """The pool's workers are joined in the order they started, not in the (address-based)
    order of a set, so a search makes the same choices in every process."""
    script = pytester.makepyfile(pool_decisions=POOL_DECISIONS)
    seen = set()
    for _ in range(3):
        result = pytester.runpython(script)
        lines = [line for line in result.outlines if line.startswith("DECISIONS")]
        assert len(lines) == 1, result.errlines
        seen.add(lines[0])
    assert len(seen) == 1, seen
