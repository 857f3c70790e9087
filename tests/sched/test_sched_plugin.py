"""End to end: the ``thread_preemption`` scenario in a real pytest run."""

from __future__ import annotations

import re

import pytest

BUGGY = """
import threading
import pytest

def transfer_all(accounts, lock):
    with lock:
        balance = accounts["a"]
    with lock:
        accounts["a"] = 0
        accounts["b"] += balance

@pytest.mark.faultline("thread_preemption", runs=200, strategy="random")
def test_transfers():
    accounts = {"a": 10, "b": 0}
    lock = threading.Lock()
    threads = [threading.Thread(target=transfer_all, args=(accounts, lock)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accounts == {"a": 0, "b": 10}
"""


def test_scenario_finds_the_race_and_prints_the_replay_command(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=BUGGY)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--faultline-seed=7")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*faultline: schedule * (of up to 200, random, preempt=sync) failed*",
            "*the replay failed the same way twice*",
            "*replay: pytest test_bank.py::test_transfers --faultline-replay=fl1.*",
            "*step | T0 (main)*",
        ]
    )
    token = re.search(r"--faultline-replay=(fl1\.\S+)", result.stdout.str())
    assert token is not None

    replayed = pytester.runpytest_subprocess("-p", "no:randomly", f"--faultline-replay={token[1]}")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(
        [
            "*assert {'a': 0, 'b': 20}*",
            "*faultline: the schedule replayed from its token failed (random, preempt=sync)*",
            f"*seed: * token: {token[1]}",
        ]
    )


def test_fixed_code_passes_every_schedule_and_body_reruns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixed="""
        import threading
        import pytest

        RUNS = []

        def transfer_all(accounts, lock):
            with lock:
                balance = accounts["a"]
                accounts["a"] = 0
                accounts["b"] += balance

        @pytest.mark.faultline("thread_preemption", runs=37, strategy="pct")
        def test_transfers(faultline):
            RUNS.append(1)
            accounts = {"a": 10, "b": 0}
            lock = threading.Lock()
            threads = [
                threading.Thread(target=transfer_all, args=(accounts, lock)) for _ in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert accounts == {"a": 0, "b": 10}

        def test_body_ran_once_per_schedule():
            assert len(RUNS) == 37
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_patched_names_are_restored_after_failing_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_restore="""
        import _thread, queue, threading, time
        import pytest
        from pytest_faultline import _points

        ORIGINAL = (threading.Lock, threading.RLock, threading.Condition, threading.Event,
                    threading.Semaphore, threading.BoundedSemaphore, threading.Barrier,
                    threading.Thread.start, threading.Thread.join, queue.SimpleQueue,
                    time.sleep, time.monotonic, time.time)
        # Threads other plugins keep (pytest-rerunfailures' server) are there before the tests.
        BEFORE = set(threading.enumerate())

        def current():
            return (threading.Lock, threading.RLock, threading.Condition, threading.Event,
                    threading.Semaphore, threading.BoundedSemaphore, threading.Barrier,
                    threading.Thread.start, threading.Thread.join, queue.SimpleQueue,
                    time.sleep, time.monotonic, time.time)

        @pytest.mark.faultline("thread_preemption", runs=5)
        def test_fails_inside_the_run():
            assert current() != ORIGINAL  # patched while the body runs
            raise RuntimeError("boom")

        @pytest.mark.faultline("thread_preemption", runs=50)
        def test_deadlocks():
            a, b = threading.Lock(), threading.Lock()
            def one():
                with a, b: pass
            def two():
                with b, a: pass
            ts = [threading.Thread(target=one), threading.Thread(target=two)]
            for t in ts: t.start()
            for t in ts: t.join()

        def test_everything_is_restored():
            assert current() == ORIGINAL
            assert type(threading.Lock()) is _thread.LockType
            assert _points._observer is None
            assert set(threading.enumerate()) <= BEFORE
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*RuntimeError: boom*", "*DeadlockError: deadlock: every managed thread is blocked*"]
    )


def test_bad_scenario_parameters_fail_at_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.faultline("thread_preemption", preempt="lines")
        def test_x():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*faultline scenario 'thread_preemption': preempt='lines' needs modules=*"]
    )
