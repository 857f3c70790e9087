"""The deterministic thread scheduler: the same threads re-run under many interleavings, one
thread at a time, so a deadlock is reported (with the locks and threads of its cycle) instead of
hanging, and a race needs no luck. Locks wait without a bound here (``lock_timeout=None``): the
scheduler sees every thread blocked and says so."""

from __future__ import annotations

import inspect
import threading
from types import ModuleType

import pytest
from midas_cm_msg import buggy, core, fixed

from pytest_faultline import DeadlockError

RUNS = 200
LINES = ["midas_cm_msg.buggy", "midas_cm_msg.fixed"]  # where cm_exist() and cm_msg() live


def run_threads(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def client_and_watchdog(implementation: ModuleType) -> None:
    """A client starts and stops while the watchdog removes a crashed one."""
    midas = implementation.Midas(lock_timeout=None)  # fresh for every schedule
    midas.crash(midas.cm_connect_experiment("feCrashed"))

    def client() -> None:
        midas.cm_disconnect_experiment(midas.cm_connect_experiment("feDAQ"))

    run_threads(
        threading.Thread(target=client, name="client feDAQ"),
        threading.Thread(target=midas.cm_watchdog, name="cm_watchdog"),
    )
    midas.cm_exit()
    assert midas.check_tree() == []
    assert midas.clients() == {}
    assert [m.routine for m in midas.sysmsg.messages].count("cm_watchdog") == 1


def alarm_check_while_a_client_stops(implementation: ModuleType) -> None:
    """The alarm check asks about a program that is not running, so it reads every client's
    name, while the last client in the tree stops."""
    midas = implementation.Midas(lock_timeout=None)
    midas.cm_connect_experiment("mlogger")
    daq = midas.cm_connect_experiment("feDAQ")
    answers: list[bool] = []
    errors: list[str] = []

    def alarm_check() -> None:
        try:
            answers.append(midas.cm_exist("mhttpd"))
        except core.MidasError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    run_threads(
        threading.Thread(target=alarm_check, name="al_check"),
        threading.Thread(target=midas.cm_disconnect_experiment, args=(daq,), name="client feDAQ"),
    )
    assert errors == [], "cm_exist() read a client key deleted after it was enumerated"
    assert midas.odb.invalid_handles == []
    assert answers == [False]


@pytest.mark.faultline("thread_preemption", runs=RUNS)
def test_client_and_watchdog_never_deadlock(implementation):
    client_and_watchdog(implementation)


# The stale key needs the client's whole stop to land between two lines of the check: a deep
# ordering that PCT's priorities reach within RUNS schedules, uniform random choices not always.
@pytest.mark.faultline(
    "thread_preemption", runs=RUNS, strategy="pct", preempt="lines", modules=LINES
)
def test_cm_exist_never_reads_a_stale_key(implementation):
    alarm_check_while_a_client_stops(implementation)


def test_fixed_survives_every_schedule_with_up_to_two_preemptions(faultline):
    found = faultline.explore(
        lambda: client_and_watchdog(fixed), strategy="dfs", max_preemptions=2, runs=5000
    )
    assert found.exhausted, found.summary()
    assert found.passed
    assert found.schedules > 100  # not a trivial space: the threads really interleave


def created_at(cls: type, attribute: str) -> str:
    """``core.py:LINE``: where ``cls.__init__`` creates the lock ``attribute``."""
    lines, first = inspect.getsourcelines(cls.__init__)  # type: ignore[misc]
    (offset,) = [i for i, line in enumerate(lines) if f"self.{attribute} = threading." in line]
    return f"created at core.py:{first + offset}"


def test_buggy_deadlock_names_both_locks_and_threads(faultline):
    found = faultline.explore(lambda: client_and_watchdog(buggy), runs=RUNS, raises=False)
    assert isinstance(found.failure, DeadlockError), found.report
    text = str(found.failure)
    # Locks are named by the attribute they were assigned to, as in lock-order reports.
    assert "T1 (client feDAQ) waits SysMsg._sysmsg_lock (L1) at core.py" in text
    assert "T2 (cm_watchdog) waits Odb._odb_lock (R1) at core.py" in text
    assert f"SysMsg._sysmsg_lock (L1) = Lock {created_at(core.SysMsg, '_sysmsg_lock')}" in text
    assert f"Odb._odb_lock (R1) = RLock {created_at(core.Odb, '_odb_lock')}" in text
    assert "in cm_disconnect_experiment" in text
    assert "in cm_watchdog" in text
    assert found.token  # a replayable schedule


def test_buggy_cm_exist_reads_the_stale_key(faultline):
    found = faultline.explore(
        lambda: alarm_check_while_a_client_stops(buggy),
        runs=RUNS,
        strategy="pct",  # a deep ordering: see test_cm_exist_never_reads_a_stale_key
        preempt="lines",
        modules=LINES,
        raises=False,
    )
    assert isinstance(found.failure, AssertionError), found.report
    assert 'InvalidKeyError: db_get_value: "Name" is of type NULL, not STRING' in str(found.failure)
