"""Locks the scheduler does not manage, and stopping a run: cleanup runs, nothing stays held."""

from __future__ import annotations

import _thread
import sys
import threading

import pytest

from pytest_faultline import DeadlockError
from pytest_faultline.controller import Faultline

# Created at import, before any run: a real lock the scheduler does not manage.
REAL = threading.Lock()
PLAIN = _thread.allocate_lock()  # as C code would make it


def _two_threads_on(lock: _thread.LockType, log: list[str]) -> None:
    def worker(name: str) -> None:
        with lock:
            log.append(name)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("preempt", ["sync", "lines"])
def test_a_lock_created_before_the_run_is_not_a_deadlock(
    faultline: Faultline, preempt: str
) -> None:
    log: list[str] = []

    def body() -> None:
        log.clear()
        _two_threads_on(REAL, log)
        assert sorted(log) == ["a", "b"]

    modules = [__name__] if preempt == "lines" else []
    result = faultline.explore(body, runs=30, preempt=preempt, modules=modules, stall_timeout=3)
    assert result.passed, result.report
    assert not REAL.locked()


def test_a_lock_held_forever_outside_is_reported_naming_it(faultline: Faultline) -> None:
    """Nothing can progress: after the stall bound, a report naming the lock, not a hang."""
    PLAIN.acquire()
    try:

        def body() -> None:
            with PLAIN:
                pass

        result = faultline.explore(body, runs=1, stall_timeout=0.5, raises=False)
    finally:
        PLAIN.release()
    assert isinstance(result.failure, DeadlockError)
    text = str(result.failure)
    assert "PLAIN" in text, text
    assert "not managed by the scheduler" in text, text
    assert f"{__name__}.PLAIN" in text, text


def test_unwinding_runs_finally_blocks_and_releases_real_locks(faultline: Faultline) -> None:
    """A failure in one thread stops the run; the other thread, inside a ``with`` on a real lock
    in lines mode, runs its ``finally`` and releases the lock."""
    cleaned: list[str] = []

    def body() -> None:
        started = threading.Event()

        def holder() -> None:
            try:
                with REAL:
                    started.set()
                    for _ in range(50):
                        pass
            finally:
                cleaned.append("holder")

        t = threading.Thread(target=holder)
        t.start()
        started.wait()
        raise ValueError("the body fails while the holder holds REAL")

    result = faultline.explore(
        body, runs=5, preempt="lines", modules=[__name__], stall_timeout=3, raises=False
    )
    assert isinstance(result.failure, ValueError)
    assert not REAL.locked()
    assert "holder" in cleaned


def test_a_deadlock_unwinds_through_with_blocks(faultline: Faultline) -> None:
    """After a reported deadlock, every ``with`` exit ran: no managed lock stays held."""
    made: list[threading.Lock] = []

    def body() -> None:
        a, b = threading.Lock(), threading.Lock()
        made[:] = [a, b]

        def one() -> None:
            with a, b:
                pass

        def two() -> None:
            with b, a:
                pass

        ts = [threading.Thread(target=f) for f in (one, two)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    result = faultline.explore(body, runs=200, strategy="random", raises=False)
    assert isinstance(result.failure, DeadlockError)
    assert made
    assert not any(lock.locked() for lock in made)


def test_a_thread_registering_after_the_abort_does_not_wait_on_its_gate() -> None:
    """The SIGINT race: a thread listed after the abort opened the gates opens its own."""
    from pytest_faultline.decider import Decider
    from pytest_faultline.sched.runtime import Scheduler
    from pytest_faultline.sched.strategies import make_strategy

    sched = Scheduler(
        make_strategy("random", depth=1, max_preemptions=None),
        Decider(1).stream("sched", recorded=True),
        stall_timeout=1.0,
        max_steps=100,
    )
    sched.new_thread(None)
    sched.fail(KeyboardInterrupt(), None)
    late = sched.new_thread(None)
    assert late.gate.acquire(False), "the late thread's gate was left closed"


LOGGING_RUN = """
import logging
import threading

import pytest

log = logging.getLogger("two_threads")
handler = logging.StreamHandler()   # created at import: its lock is a real RLock
log.addHandler(handler)
log.setLevel(logging.INFO)


@pytest.mark.faultline("thread_preemption", runs=20, preempt="lines", modules=["logging"])
def test_two_threads_log_through_one_handler():
    def worker(n):
        for i in range(3):
            log.info("worker %d line %d", n, i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_logging_is_usable_afterwards():
    assert not logging._lock._is_owned()
    logging.getLogger("after").warning("still works")
"""


def test_logging_in_lines_mode_passes_and_leaves_logging_usable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_logging_run=LOGGING_RUN)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "timeout", "--timeout=60"
    )
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_keyboard_interrupt_during_a_run_unwinds_and_leaks_no_thread(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_interrupt="""
        import _thread
        import threading

        import pytest


        @pytest.mark.faultline("thread_preemption", runs=10_000, strategy="random")
        def test_interrupted():
            counter = [0]
            lock = threading.Lock()

            def worker():
                for _ in range(3):
                    with lock:
                        counter[0] += 1

            threads = [threading.Thread(target=worker) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if counter[0] == 9 and not hasattr(_thread, "_fl_sent"):
                _thread._fl_sent = True
                _thread.interrupt_main()


        def test_after():
            names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
            assert names == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    assert "KeyboardInterrupt" in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
