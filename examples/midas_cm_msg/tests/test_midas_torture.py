"""The incident's torture test: 50 short-lived clients starting and stopping at once while the
watchdog runs and the alarm check enumerates the clients.

On real hardware the deadlock needed the scheduler to stop a process at the wrong instruction;
here short injected stalls with a lock held (a page fault, a preempted process) widen those
windows, drawn from the test's seed. Every lock wait is bounded, so a deadlock ends as lock
timeouts naming the holders, every thread ends, and the whole run takes seconds.
"""

from __future__ import annotations

import threading

import pytest
from midas_cm_msg.workload import torture

from pytest_faultline import actions

STALL_S = 0.002
LOCK_TIMEOUT_S = 1.0
DEADLINE_S = 15.0


@pytest.fixture
def stalls(faultline):
    """Short stalls while the ODB lock is held, and between cm_exist()'s enumerate and read."""
    faultline.arm("odb.locked", actions.Delay(STALL_S), probability=0.05)
    faultline.arm("cm_exist.enumerated", actions.Delay(STALL_S), probability=0.02)


@pytest.mark.buggy_fails(raises=AssertionError)
def test_fifty_clients_start_and_stop(implementation, programs, faultline, stalls):
    midas = implementation.Midas(lock_timeout=LOCK_TIMEOUT_S)
    crashed = {i for i in range(len(programs)) if faultline.random.random() < 0.2}
    result = torture(midas, programs, crashes=crashed.__contains__, deadline=DEADLINE_S)
    report = result.describe(midas)

    assert result.still_running == [], report
    assert result.errors == [], report  # no lock timeout (deadlock), no stale key
    assert result.started == len(programs), report
    assert result.stopped + result.crashed == len(programs), report
    assert midas.odb.invalid_handles == [], report
    assert midas.check_tree() == [], report
    assert midas.clients() == {}, report
    stopped = [m for m in midas.sysmsg.messages if m.text.endswith(" stopped")]
    removed = [m for m in midas.sysmsg.messages if m.routine == "cm_watchdog"]
    assert (len(stopped), len(removed)) == (result.stopped, result.crashed), report


def test_a_stuck_run_is_reported_not_waited_for(any_implementation):
    # The harness itself: a thread that outlives the deadline is named, and still ends, because
    # every wait in the system is bounded. Here an outside thread holds the ODB lock too long.
    midas = any_implementation.Midas(lock_timeout=0.5)
    holding, release = threading.Event(), threading.Event()

    def hold_the_odb() -> None:
        with midas.odb:
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_odb, name="stalled holder")
    holder.start()
    try:
        assert holding.wait(5)
        result = torture(midas, [("feA", "daq01"), ("feB", "daq02")], deadline=0.1)
    finally:
        release.set()
        holder.join(5)
    assert "client feA" in result.still_running
    assert any("the ODB lock held by 'stalled holder'" in e for e in result.errors), result.errors
    assert not any(t.name.startswith("client fe") for t in threading.enumerate())
