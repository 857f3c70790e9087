"""The lock-order watcher on real threads: what is an inversion and what is not."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable
from typing import cast

import pytest

from pytest_faultline import LockOrderError
from pytest_faultline.lockorder import LockOrder
from pytest_faultline.lockorder._tracked import TrackedLock, TrackedRLock

BOUND_S = 10.0


def run_in_order(*steps: Callable[[], object]) -> list[BaseException]:
    """Run each step in its own thread, one after the other (never overlapping), so orders are
    taken at different times and no run can deadlock. Returns the threads' exceptions."""
    errors: list[BaseException] = []

    def body(step: Callable[[], object], done: threading.Event) -> None:
        try:
            step()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    for number, step in enumerate(steps, 1):
        done = threading.Event()
        thread = threading.Thread(target=body, args=(step, done), name=f"worker-{number}")
        thread.start()
        assert done.wait(BOUND_S), f"step {number} did not finish"
        thread.join(BOUND_S)
    return errors


def test_abba_across_two_threads_is_reported_without_a_deadlock() -> None:
    with LockOrder() as order:
        lock_a = threading.Lock()
        lock_b = threading.Lock()

        def forward() -> None:
            with lock_a, lock_b:
                pass

        def backward() -> None:
            with lock_b, lock_a:
                pass

        assert run_in_order(forward, backward) == []
    assert [str(e) for e in order.edges] == ["lock_a -> lock_b", "lock_b -> lock_a"]
    (inversion,) = order.inversions
    assert inversion.kind == "class"
    assert set(inversion.cycle) == {"lock_a", "lock_b"}
    assert inversion.same_objects
    assert inversion.thread == "worker-2"
    report = inversion.report()
    assert "lock-order inversion (potential deadlock)" in report
    assert "lock_a acquired while holding lock_b, in thread 'worker-2'" in report
    assert "lock_b acquired while holding lock_a, in thread 'worker-1'" in report
    assert "lock_a previously acquired by the same thread at:" in report
    # Both stacks name the lines that took each lock.
    assert "with lock_a, lock_b:" in report
    assert "with lock_b, lock_a:" in report
    assert "lock_a: Lock created at" in report
    assert "(lock_a = threading.Lock())" in report


def test_the_naive_order_deadlocks_for_real_when_the_threads_meet() -> None:
    # The other side of the previous test: the orders flagged there do deadlock when timed
    # badly. Both threads hold their first lock before either takes its second.
    lock_a, lock_b = threading.Lock(), threading.Lock()
    both_hold = threading.Barrier(2, timeout=BOUND_S)
    both_tried = threading.Barrier(2, timeout=BOUND_S)
    results: list[bool] = []

    def take(first: threading.Lock, second: threading.Lock) -> None:
        with first:
            both_hold.wait()
            got = second.acquire(timeout=0.2)  # bounded: a real deadlock would hang forever
            results.append(got)
            if got:
                second.release()
            both_tried.wait()  # each keeps its first lock until the other has tried

    threads = [
        threading.Thread(target=take, args=(lock_a, lock_b)),
        threading.Thread(target=take, args=(lock_b, lock_a)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND_S)
    assert results == [False, False]


def test_three_lock_cycle_is_reported() -> None:
    with LockOrder() as order:
        odb = threading.Lock()
        msg = threading.Lock()
        log = threading.Lock()

        def one() -> None:
            with odb, msg:
                pass

        def two() -> None:
            with msg, log:
                pass

        def three() -> None:
            with log, odb:
                pass

        assert run_in_order(one, two, three) == []
    (inversion,) = order.inversions
    assert inversion.summary in (
        "odb -> msg -> log -> odb",
        "msg -> log -> odb -> msg",
        "log -> odb -> msg -> log",
    )
    assert len(inversion.edges) == 3
    assert {e.thread for e in inversion.edges} == {"worker-1", "worker-2", "worker-3"}
    assert "a cycle among 3 lock classes" in inversion.report()


def test_consistent_order_is_clean() -> None:
    with LockOrder() as order:
        odb = threading.Lock()
        msg = threading.RLock()
        log = threading.Lock()

        def one() -> None:
            with odb, msg, log:
                pass

        def two() -> None:
            with msg, log:
                pass

        def three() -> None:
            with odb, log:
                pass

        assert run_in_order(one, two, three, one) == []
    assert order.inversions == []
    assert {str(e) for e in order.edges} == {
        "odb -> msg",
        "odb -> log",
        "msg -> log",
    }
    assert order.report() == "no lock-order inversion among 3 edges"


def test_rlock_reentry_is_not_an_edge() -> None:
    with LockOrder() as order:
        outer = threading.RLock()
        inner = threading.Lock()

        def nested() -> None:
            # The second `outer` is a reentry while holding inner: no inner -> outer edge.
            with outer, inner, outer:
                pass

        assert run_in_order(nested) == []
    assert [str(e) for e in order.edges] == ["outer -> inner"]
    assert order.inversions == []


def test_same_class_nesting_in_a_stable_order_is_clean() -> None:
    class Account:
        def __init__(self, number: int) -> None:
            self.number = number
            self._lock = threading.Lock()

    def transfer(source: Account, target: Account) -> None:
        first, second = sorted((source, target), key=lambda a: a.number)
        with first._lock, second._lock:
            pass

    with LockOrder() as order:
        a, b, c = Account(1), Account(2), Account(3)
        assert (
            run_in_order(lambda: transfer(a, b), lambda: transfer(b, a), lambda: transfer(c, a))
            == []
        )
    assert order.inversions == []
    assert {str(e) for e in order.edges} == {
        "Account._lock (L1) -> Account._lock (L2)",
        "Account._lock (L1) -> Account._lock (L3)",
    }


def test_same_class_instance_cycle_is_reported_as_such() -> None:
    class Account:
        def __init__(self) -> None:
            self._lock = threading.Lock()

    def transfer(source: Account, target: Account) -> None:
        with source._lock, target._lock:  # naive: locks in argument order
            pass

    with LockOrder() as order:
        a, b = Account(), Account()
        assert run_in_order(lambda: transfer(a, b), lambda: transfer(b, a)) == []
    (inversion,) = order.inversions
    assert inversion.kind == "instance"
    assert set(inversion.cycle) == {"Account._lock (L1)", "Account._lock (L2)"}
    report = inversion.report()
    assert "a cycle among 2 locks of one class, Account._lock" in report
    assert "order the objects by a stable key" in report


def test_nonblocking_acquire_is_recorded_but_not_an_edge() -> None:
    with LockOrder() as order:
        lock_a = threading.Lock()
        lock_b = threading.Lock()

        def forward() -> None:
            with lock_a, lock_b:
                pass

        def backward_try() -> None:
            with lock_b:
                assert lock_a.acquire(blocking=False)
                lock_a.release()

        assert run_in_order(forward, backward_try) == []
    assert [str(e) for e in order.edges] == ["lock_a -> lock_b"]
    assert order.inversions == []
    assert [str(t) for t in order.trylocks] == ["lock_b -> lock_a (non-blocking, 1x)"]


def test_the_same_cycle_is_reported_once() -> None:
    with LockOrder() as order:
        lock_a = threading.Lock()
        lock_b = threading.Lock()

        def forward() -> None:
            with lock_a, lock_b:
                pass

        def backward() -> None:
            with lock_b, lock_a:
                pass

        assert run_in_order(forward, backward, forward, backward, backward) == []
    assert len(order.inversions) == 1


def test_fail_raises_in_the_acquiring_thread_before_taking_the_lock() -> None:
    with LockOrder(fail=True) as order:
        lock_a = threading.Lock()
        lock_b = threading.Lock()

        def forward() -> None:
            with lock_a, lock_b:
                pass

        def backward() -> None:
            with lock_b, lock_a:
                pass

        errors = run_in_order(forward, backward)
    assert len(errors) == 1
    assert isinstance(errors[0], LockOrderError)
    assert "lock_a acquired while holding lock_b, in thread 'worker-2'" in str(errors[0])
    # The closing acquire did not take the lock, and the with-block released lock_b.
    assert not lock_a.locked()
    assert not lock_b.locked()
    assert len(order.inversions) == 1


def test_condition_semaphore_and_queue_locks_are_tracked_and_still_work() -> None:
    import queue

    with LockOrder() as order:
        guard = threading.Lock()
        ready = threading.Condition()
        slots = threading.Semaphore(1)
        jobs: queue.Queue[int] = queue.Queue()
        woke: list[bool] = []

        def waiter() -> None:
            with ready:
                woke.append(ready.wait_for(lambda: bool(jobs.qsize()), timeout=BOUND_S))

        thread = threading.Thread(target=waiter)
        thread.start()
        with guard:
            jobs.put(1)  # guard -> the queue's lock
            with ready:  # guard -> the condition's RLock
                ready.notify_all()
        thread.join(BOUND_S)
        with guard, slots:  # guard -> the semaphore's lock (held only inside acquire)
            pass
    assert woke == [True]
    names = {str(e) for e in order.edges}
    assert "guard -> jobs" in names
    assert "guard -> ready" in names
    kinds = {e.second.name: e.second.describe() for e in order.edges}
    assert "the RLock inside a Condition" in kinds["ready"]
    assert "the Lock inside a Queue" in kinds["jobs"]
    assert "the Lock inside a Semaphore" in kinds["slots"]
    assert order.inversions == []


def test_patches_are_restored_exactly_and_chain_to_the_previous_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    real_lock, real_rlock = threading.Lock, threading.RLock

    def other_layer_lock() -> object:  # e.g. the thread scheduler's patched primitives
        made.append("Lock")
        return real_lock()

    def other_layer_rlock() -> object:
        made.append("RLock")
        return real_rlock()

    monkeypatch.setattr(threading, "Lock", other_layer_lock)
    monkeypatch.setattr(threading, "RLock", other_layer_rlock)
    with LockOrder():
        assert threading.Lock is not other_layer_lock
        lock = threading.Lock()
        rlock = threading.RLock()
        with lock, rlock, rlock:
            pass
    assert made == ["Lock", "RLock"]
    assert threading.Lock is other_layer_lock
    assert threading.RLock is other_layer_rlock


def test_nested_watchers_wrap_each_lock_once() -> None:
    with LockOrder() as outer, LockOrder() as inner:
        lock_a = threading.Lock()
        lock_b = threading.Lock()
        with lock_a, lock_b:
            pass
        # One wrapper, around the real lock.
        assert type(cast(TrackedLock, lock_a)._inner).__name__ == "lock"
    assert [str(e) for e in outer.edges] == ["lock_a -> lock_b"]
    assert [str(e) for e in inner.edges] == ["lock_a -> lock_b"]


def test_a_tracked_lock_behaves_like_a_lock() -> None:
    with LockOrder():
        lock = threading.Lock()
        rlock = cast(TrackedRLock, threading.RLock())  # _is_owned() is private to CPython's RLock
    assert lock.acquire()
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    assert not lock.acquire(timeout=0.01)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1.0)
    with rlock, rlock:
        assert rlock._is_owned()
    assert not rlock._is_owned()
    with pytest.raises(RuntimeError):
        rlock.release()
    # A Lock may be released by another thread (used as a signal).
    lock.acquire()
    releaser = threading.Thread(target=lock.release)
    releaser.start()
    releaser.join(BOUND_S)
    assert not lock.locked()
    assert "tracked Lock lock" in repr(lock)


def test_a_layer_patching_on_top_keeps_locks_tracked_through_rechain() -> None:
    from pytest_faultline._sites import rechain
    from pytest_faultline.lockorder._tracked import TrackedLock

    class StandIn:  # what a scheduler installs per run, on top of the watcher
        made = 0

        def __init__(self) -> None:
            StandIn.made += 1
            self._real = _thread.allocate_lock()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            return self._real.acquire(blocking, timeout)

        def release(self) -> None:
            self._real.release()

        def locked(self) -> bool:
            return self._real.locked()

    with LockOrder() as order:
        ours = threading.Lock
        threading.Lock = rechain(threading.Lock, StandIn)  # type: ignore[assignment]
        try:
            lock_a = threading.Lock()
            lock_b = threading.Lock()
        finally:
            threading.Lock = ours
        with lock_a, lock_b:
            pass
        with lock_b, lock_a:
            pass
    assert isinstance(lock_a, TrackedLock)
    assert StandIn.made == 2
    assert [str(i.summary) for i in order.inversions] == ["lock_a -> lock_b -> lock_a"]
    assert rechain(threading.Lock, StandIn) is StandIn  # no watcher: the stand-in as is


class Guard:
    """A lock taken through a helper: ``with guard:`` calls ``acquire()`` in ``__enter__``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_stack_shows_the_line_that_took_the_lock_through_a_helper() -> None:
    # The caller of __enter__ has moved on to the next `with` when the edge is recorded; the
    # report must still name the line where the first lock was taken.
    with LockOrder() as order:
        guard_a, guard_b = Guard(), Guard()

        def forward() -> None:
            with guard_a:
                marker = "first lock held"
                with guard_b:
                    assert marker

        def backward() -> None:
            with guard_b:  # noqa: SIM117 - separate lines are the point of this test
                with guard_a:
                    pass

        assert run_in_order(forward, backward) == []
    (inversion,) = order.inversions
    report = inversion.report()
    # worker-1 ran forward: its "previously acquired" block is where it took guard_a.
    block = report.split("in thread 'worker-1':")[1].split("previously acquired by the same")[1]
    block = block.split("\n\n")[0]
    assert "with guard_a:" in block, report
    assert "with guard_b:" not in block, report
