"""The incident's torture test: 50 short-lived clients starting and stopping at once while the
watchdog runs and the alarm check enumerates the clients.

On real hardware the deadlock needed the scheduler to stop a process at the wrong instruction;
here short injected stalls with a lock held (a page fault, a preempted process) widen those
windows, drawn from the test's seed. Every lock wait is bounded, so a deadlock ends as lock
timeouts naming the holders, every thread ends, and the whole run takes seconds.
"""

from __future__ import annotations

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
