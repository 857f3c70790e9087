"""Locks the scheduler does not manage, and stopping a run: cleanup runs, nothing stays held."""

from __future__ import annotations

import _thread
import json
import subprocess
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
    # Bounded by the subprocess timeout (a hang in logging's teardown is beyond pytest-timeout,
    # which is not in the test extra anyway).
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", timeout=120
    )
    result.assert_outcomes(passed=2)


# Ctrl-C during a run, in a pytest session of its own. The interrupt ends the session, so the
# checks run in its conftest's pytest_sessionfinish: every thread the runs made has ended (the
# run joined them, with its bound, before letting the interrupt through) and no lock, real or
# managed, is held.
INTERRUPT_CONFTEST = """
import json
import threading


def pytest_sessionfinish(session):
    import test_interrupt

    # The run's threads are gone when the interrupt reaches pytest: no wait here.
    made = set(threading.enumerate()) - test_interrupt.BEFORE  # not other plugins' threads
    alive = sorted(t.name for t in made if t.is_alive())
    held = [name for name, lock in test_interrupt.LOCKS if lock.locked()]
    with open("leaks.json", "w") as out:
        json.dump({"alive": alive, "held": held, "runs": test_interrupt.RUNS[0]}, out)
"""

INTERRUPT_TEST = """
import _thread
import threading

import pytest

REAL = threading.Lock()  # made at import: a real lock the scheduler does not manage
LOCKS = [("REAL", REAL)]
BEFORE = set(threading.enumerate())
RUNS = [0]
WHEN = {when!r}


@pytest.mark.faultline("thread_preemption", runs=10_000, strategy="random")
def test_interrupted():
    RUNS[0] += 1
    counter = [0]
    lock = threading.Lock()
    LOCKS.append((f"the lock of run {{RUNS[0]}}", lock))

    def worker():
        for _ in range(3):
            with lock:
                counter[0] += 1
            with REAL:
                pass

    threads = [threading.Thread(target=worker) for _ in range(3)]
    if WHEN == "as threads start" and RUNS[0] == 3:
        _thread.interrupt_main()  # the threads below register while the run is aborted
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if WHEN == "mid-run" and counter[0] == 9 and RUNS[0] == 3:
        _thread.interrupt_main()


def test_after():
    pass
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("when", ["mid-run", "as threads start"])
def test_keyboard_interrupt_during_a_run_unwinds_and_leaks_no_thread(
    pytester: pytest.Pytester, when: str
) -> None:
    pytester.makeconftest(INTERRUPT_CONFTEST)
    pytester.makepyfile(test_interrupt=INTERRUPT_TEST.format(when=when))
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", timeout=120
    )
    assert "KeyboardInterrupt" in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    leaks = json.loads((pytester.path / "leaks.json").read_text())
    assert leaks["runs"] >= 3  # the interrupt came during a run, not before the first
    assert leaks["alive"] == [], f"threads left running after Ctrl-C: {leaks['alive']}"
    assert leaks["held"] == [], f"locks left held after Ctrl-C: {leaks['held']}"


# The race itself, many times in one process: Ctrl-C arrives at a different point of a run
# each time (before, while and after the workers register); after each, every thread the run
# started has ended and no lock is held. The interrupt is caught as a program's main would.
INTERRUPT_LOOP = """
import _thread
import json
import threading
import time

from pytest_faultline.controller import Faultline

REAL = threading.Lock()
ROUNDS = 24
JOIN_BOUND_S = 5.0
report = []
for round_ in range(ROUNDS):
    locks = [("REAL", REAL)]
    state = {{"steps": 0, "sent": False}}
    at = round_ % 12  # the scheduling step at which Ctrl-C is sent

    def body():
        lock = threading.Lock()
        locks.append(("run lock", lock))

        def step():
            state["steps"] += 1
            if state["steps"] == at and not state["sent"]:
                state["sent"] = True
                _thread.interrupt_main()

        def worker():
            for _ in range(2):
                step()
                with lock:
                    step()
                with REAL:
                    pass

        threads = [threading.Thread(target=worker) for _ in range(3)]
        step()
        for t in threads:
            t.start()
            step()
        for t in threads:
            t.join()

    before = set(threading.enumerate())
    fl = Faultline(seed=round_, nodeid="interrupt")
    interrupted = False
    try:
        fl.explore(body, runs=200, strategy="random", raises=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        fl.close()
    # When explore() has let the interrupt through, the run's threads are gone already.
    made = set(threading.enumerate()) - before
    alive = sorted(t.name for t in made if t.is_alive())
    held = [name for name, lock in locks if lock.locked()]
    report.append({{"interrupted": interrupted, "alive": alive, "held": held}})
    end = time.monotonic() + JOIN_BOUND_S  # a leak must not spill into the next round
    for t in made:
        t.join(max(0.0, end - time.monotonic()))
print(json.dumps(report))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_at_any_point_of_a_run_leaks_no_thread_and_no_held_lock() -> None:
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPT_LOOP.format()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert sum(r["interrupted"] for r in report) >= len(report) // 2, report
    leaked = [(i, r["alive"]) for i, r in enumerate(report) if r["alive"]]
    assert leaked == [], f"threads left running after Ctrl-C (round, names): {leaked}"
    held = [(i, r["held"]) for i, r in enumerate(report) if r["held"]]
    assert held == [], f"locks left held after Ctrl-C (round, names): {held}"
