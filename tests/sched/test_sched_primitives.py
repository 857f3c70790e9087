"""The managed primitives behave like threading's, with virtual time, and are put back after
every run."""

from __future__ import annotations

import _thread
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Lock as ImportedLock
from time import sleep as imported_sleep

import pytest

from pytest_faultline import _points, _raw, actions
from pytest_faultline.controller import Faultline

ORIGINALS = {
    (threading, "Lock"): threading.Lock,
    (threading, "RLock"): threading.RLock,
    (threading, "Condition"): threading.Condition,
    (threading, "Semaphore"): threading.Semaphore,
    (threading, "BoundedSemaphore"): threading.BoundedSemaphore,
    (threading, "Event"): threading.Event,
    (threading, "Barrier"): threading.Barrier,
    (threading.Thread, "start"): threading.Thread.start,
    (threading.Thread, "join"): threading.Thread.join,
    (queue, "SimpleQueue"): queue.SimpleQueue,
    (time, "sleep"): time.sleep,
    (time, "monotonic"): time.monotonic,
    (time, "time"): time.time,
}


def assert_restored() -> None:
    for (owner, name), original in ORIGINALS.items():
        assert getattr(owner, name) is original, f"{name} still patched"
    assert queue.time is _raw.monotonic  # type: ignore[attr-defined]  # private, not in typeshed
    assert _points._observer is None


def once(faultline: Faultline, body: Callable[[], None], **options: object) -> None:
    faultline.explore(body, runs=options.pop("runs", 3), strategy="random", **options)


def test_sleep_and_clocks_are_virtual(faultline: Faultline) -> None:
    seen: dict[str, float] = {}

    def body() -> None:
        mono, wall = time.monotonic(), time.time()
        time.sleep(3600)
        seen["mono"] = time.monotonic() - mono
        seen["wall"] = time.time() - wall

    started = _raw.monotonic()
    once(faultline, body, runs=1)
    assert seen == {"mono": pytest.approx(3600.0), "wall": pytest.approx(3600.0)}
    assert _raw.monotonic() - started < 30  # an hour of virtual sleep, no real one
    assert_restored()


def test_timeouts_fire_in_virtual_time(faultline: Faultline) -> None:
    def body() -> None:
        start = time.monotonic()
        lock = threading.Lock()
        lock.acquire()
        assert lock.acquire(timeout=2) is False
        assert threading.Event().wait(5) is False
        cond = threading.Condition()
        with cond:
            assert cond.wait(1) is False
        with pytest.raises(queue.Empty):
            queue.Queue().get(timeout=3)
        assert threading.Semaphore(0).acquire(timeout=4) is False
        sleeper = threading.Thread(target=time.sleep, args=(100,))
        sleeper.start()
        sleeper.join(timeout=10)
        assert sleeper.is_alive()
        assert time.monotonic() - start == pytest.approx(25.0)
        sleeper.join()
        assert not sleeper.is_alive()
        assert time.monotonic() - start == pytest.approx(115.0)  # started at 15, slept 100

    once(faultline, body)


def test_primitives_keep_threading_semantics(faultline: Faultline) -> None:
    def body() -> None:
        lock = threading.Lock()
        with pytest.raises(RuntimeError):
            lock.release()
        with pytest.raises(ValueError, match="non-blocking"):
            lock.acquire(False, 1)
        rlock = threading.RLock()
        with rlock, rlock:
            pass
        with pytest.raises(RuntimeError):
            rlock.release()
        sem = threading.BoundedSemaphore(1)
        with pytest.raises(ValueError, match="released too many times"):
            sem.release()
        with pytest.raises(RuntimeError, match="un-acquired"):
            threading.Condition().wait()
        barrier = threading.Barrier(2)
        with pytest.raises(threading.BrokenBarrierError):
            barrier.wait(timeout=1)
        assert barrier.broken
        with pytest.raises(ValueError, match="non-negative"):
            time.sleep(-1)

    once(faultline, body)


def test_threads_meet_at_barrier_and_queue(faultline: Faultline) -> None:
    def body() -> None:
        barrier = threading.Barrier(3)
        indices: list[int] = []
        q: queue.Queue[int] = queue.Queue(maxsize=1)
        total: list[int] = []

        def party(i: int) -> None:
            indices.append(barrier.wait())
            q.put(i)

        def consumer() -> None:
            for _ in range(3):
                total.append(q.get())

        threads = [threading.Thread(target=party, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=consumer))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(indices) == [0, 1, 2]
        assert sorted(total) == [0, 1, 2]

    once(faultline, body, runs=30)


def test_thread_pool_executor_runs_under_the_scheduler(faultline: Faultline) -> None:
    def body() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(lambda x: x * x, range(5))) == [0, 1, 4, 9, 16]

    once(faultline, body, runs=20, stall_timeout=5.0)
    assert_restored()


def test_patches_are_undone_after_a_failing_run(faultline: Faultline) -> None:
    def body() -> None:
        threading.Lock()
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        once(faultline, body)
    assert_restored()
    assert type(threading.Lock()) is _thread.LockType


def test_exception_in_a_started_thread_fails_the_run(faultline: Faultline) -> None:
    def body() -> None:
        def worker() -> None:
            raise ValueError("worker broke")

        t = threading.Thread(target=worker)
        t.start()
        t.join()

    with pytest.raises(ValueError, match="worker broke") as info:
        once(faultline, body)
    assert "raised in T1" in "\n".join(info.value.__notes__)


def test_unmanaged_thread_holding_a_managed_lock_is_waited_for(faultline: Faultline) -> None:
    holder: dict[str, threading.Lock] = {}
    handed, released = _raw.RawEvent(), _raw.RawEvent()

    def outsider() -> None:  # started before the run: left alone by the scheduler
        assert handed.wait(10)
        lock = holder["lock"]
        with lock:
            _raw.sleep(0.05)
        released.set()

    thread = threading.Thread(target=outsider)
    thread.start()
    try:

        def body() -> None:
            lock = threading.Lock()
            holder["lock"] = lock
            handed.set()
            deadline = _raw.monotonic() + 10
            while not lock.locked() and _raw.monotonic() < deadline:
                _raw.sleep(0.001)
            with lock:  # held by the outsider: a real wait, not a deadlock
                assert released.wait(10)

        faultline.explore(body, runs=1)
    finally:
        handed.set()
        thread.join(10)
    assert not thread.is_alive()


def test_fault_points_are_scheduling_points(faultline: Faultline) -> None:
    from pytest_faultline import point

    def body() -> None:
        box = {"n": 0}

        def bump() -> None:
            n = box["n"]
            point("between.read.and.write")
            box["n"] = n + 1

        a, b = threading.Thread(target=bump), threading.Thread(target=bump)
        a.start()
        b.start()
        a.join()
        b.join()
        assert box["n"] == 2

    with pytest.raises(AssertionError):
        faultline.explore(body, runs=100, strategy="dfs")
    # Without preemptions the race stays hidden; the Preempt action forces the switch anyway.
    assert faultline.explore(body, runs=100, strategy="dfs", max_preemptions=0).exhausted
    faultline.arm("between.read.and.write", actions.Preempt(), times=1)
    with pytest.raises(AssertionError):
        faultline.explore(body, runs=100, strategy="dfs", max_preemptions=0)
    assert_restored()


def test_simple_queue_and_barrier_reset(faultline: Faultline) -> None:
    def body() -> None:
        sq: queue.SimpleQueue[int] = queue.SimpleQueue()
        with pytest.raises(queue.Empty):
            sq.get(timeout=7)
        sq.put(1)
        assert sq.get_nowait() == 1
        barrier = threading.Barrier(2)
        outcome: list[str] = []

        def waiter() -> None:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                outcome.append("broken")

        t = threading.Thread(target=waiter)
        t.start()
        while barrier.n_waiting == 0:
            time.sleep(0.01)
        barrier.reset()
        t.join()
        assert outcome == ["broken"]
        assert not barrier.broken  # usable again after reset

    once(faultline, body, runs=10)


def test_workers_left_blocked_after_the_body_are_unwound(faultline: Faultline) -> None:
    workers: list[threading.Thread] = []

    def body() -> None:
        jobs: queue.Queue[int] = queue.Queue()

        def worker() -> None:
            while True:
                jobs.get()  # nobody stops this worker

        t = threading.Thread(target=worker)
        workers.append(t)
        t.start()
        jobs.put(1)

    result = faultline.explore(body, runs=5)
    assert result.passed
    for t in workers:
        t.join(5)
    assert not any(t.is_alive() for t in workers)


def test_names_imported_from_threading_and_time_are_patched_too(faultline: Faultline) -> None:
    def body() -> None:
        lock = ImportedLock()  # bound at import: patched in this module's namespace for the run
        assert type(lock).__name__ == "ManagedLock"
        start = time.monotonic()
        imported_sleep(50)
        assert time.monotonic() - start == pytest.approx(50.0)

    once(faultline, body, runs=1)
    assert ImportedLock is ORIGINALS[(threading, "Lock")]
    assert imported_sleep is ORIGINALS[(time, "sleep")]
