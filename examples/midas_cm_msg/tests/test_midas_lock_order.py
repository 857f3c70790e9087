"""Lock-order checking on an ordinary run: the buggy MIDAS takes ODB -> SYSMSG in one place and
SYSMSG -> ODB in others. Nothing deadlocks in this run; the watcher still sees the cycle."""

from __future__ import annotations

import threading

import pytest
from midas_cm_msg import buggy
from midas_cm_msg.workload import torture

from pytest_faultline import LockOrderError

JOIN_S = 10.0


@pytest.mark.faultline("lock_order")
@pytest.mark.buggy_fails(raises=LockOrderError)
def test_start_stop_takes_locks_in_one_order(implementation, programs, faultline):
    midas = implementation.Midas()
    result = torture(midas, programs[:5], crashes=lambda i: i == 2)
    assert result.errors == [], result.describe(midas)
    assert result.still_running == [], result.describe(midas)
    assert midas.check_tree() == []
    assert faultline.lock_order.inversions == []
    assert [str(e) for e in faultline.lock_order.edges] == ["SysMsg._sysmsg_lock -> Odb._odb_lock"]


def run(target, name: str) -> None:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join(JOIN_S)
    assert not thread.is_alive()


@pytest.mark.faultline("lock_order", fail=False)
def test_buggy_inversion_is_reported_with_both_stacks(faultline):
    # The watchdog runs once, then a client starts and stops; they never overlap.
    midas = buggy.Midas()
    run(midas.cm_watchdog, "cm_watchdog")

    def client() -> None:
        midas.cm_disconnect_experiment(midas.cm_connect_experiment("feDAQ"))

    run(client, "client feDAQ")
    assert midas.check_tree() == []  # the run itself went fine

    (inversion,) = faultline.lock_order.inversions
    assert inversion.summary in (
        "Odb._odb_lock -> SysMsg._sysmsg_lock -> Odb._odb_lock",
        "SysMsg._sysmsg_lock -> Odb._odb_lock -> SysMsg._sysmsg_lock",
    )
    assert inversion.thread == "client feDAQ"
    report = inversion.report()
    assert (
        "SysMsg._sysmsg_lock acquired while holding Odb._odb_lock, in thread 'client feDAQ'"
        in report
    )
    assert (
        "Odb._odb_lock acquired while holding SysMsg._sysmsg_lock, in thread 'cm_watchdog'"
        in report
    )
    assert "in cm_disconnect_experiment" in report
    assert "in cm_watchdog" in report
    assert [e.kind for e in faultline.events if e.kind == "lock-order"] == ["lock-order"]
