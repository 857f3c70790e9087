"""No faults, one thread: both implementations behave. The bugs are latent."""

from __future__ import annotations

import threading

import pytest
from midas_cm_msg import fixed
from midas_cm_msg.core import CLIENTS, InvalidKeyError, LockTimeout


def test_clients_register_and_leave(any_implementation):
    midas = any_implementation.Midas()
    daq = midas.cm_connect_experiment("feDAQ", "daq01")
    logger = midas.cm_connect_experiment("mlogger", "daq02")
    assert midas.clients() == {daq.pid: "feDAQ", logger.pid: "mlogger"}
    assert midas.cm_exist("mlogger")
    assert not midas.cm_exist("mhttpd")

    midas.cm_disconnect_experiment(daq)
    assert midas.clients() == {logger.pid: "mlogger"}
    assert not midas.cm_exist("feDAQ")
    midas.cm_exit()
    assert [str(m) for m in midas.sysmsg.messages] == [
        "[cm_connect_experiment,INFO] Program feDAQ on host daq01 started",
        "[cm_connect_experiment,INFO] Program mlogger on host daq02 started",
        "[cm_disconnect_experiment,INFO] Program feDAQ on host daq01 stopped",
    ]
    assert midas.odb.ls("/System/Messages") == {
        "Count": 3,
        "Last": "[cm_disconnect_experiment,INFO] Program feDAQ on host daq01 stopped",
    }
    assert midas.check_tree() == []


def test_watchdog_removes_dead_clients(any_implementation):
    midas = any_implementation.Midas()
    daq = midas.cm_connect_experiment("feDAQ")
    logger = midas.cm_connect_experiment("mlogger")
    midas.crash(daq)
    assert midas.check_tree() == [f"{CLIENTS}/{daq.pid} belongs to a dead process"]

    assert midas.cm_watchdog() == [daq.pid]
    assert midas.clients() == {logger.pid: "mlogger"}
    assert midas.sysmsg.clients == {logger.pid: "mlogger"}
    assert str(midas.sysmsg.messages[-1]) == (
        f"[cm_watchdog,INFO] Client 'feDAQ' (pid {daq.pid}) removed by cm_watchdog: "
        f"process does not exist"
    )
    assert midas.cm_watchdog() == []
    assert midas.check_tree() == []


def test_a_stale_key_is_refused_and_reported(any_implementation):
    midas = any_implementation.Midas()
    daq = midas.cm_connect_experiment("feDAQ")
    hkey = midas.odb.db_find_key(daq.key)
    midas.cm_disconnect_experiment(daq)
    with pytest.raises(InvalidKeyError, match='"Name" is of type NULL, not STRING'):
        midas.odb.db_get_value(hkey, "Name", "", create=True)
    midas.cm_exit()
    assert str(midas.sysmsg.messages[-1]).startswith(
        '[db_get_value,ERROR] "Name" is of type NULL, not STRING (key /System/Clients/'
    )
    assert midas.clients() == {}  # nothing was written through the stale handle


def test_fixed_buffers_messages_while_the_odb_is_locked():
    # The fix's trade-off: a message written under the ODB lock arrives when the lock is freed.
    midas = fixed.Midas()
    with midas.odb:
        with midas.odb:
            midas.cm_msg("ERROR", "db_xxx", "something is wrong in the ODB")
        assert midas.sysmsg.messages == []
        assert len(midas.pending) == 1
    assert [str(m) for m in midas.sysmsg.messages] == [
        "[db_xxx,ERROR] something is wrong in the ODB"
    ]
    assert not midas.pending


def test_fixed_sends_whatever_is_left_at_exit():
    midas = fixed.Midas()
    midas.pending.append(fixed.Message("INFO", "late", "buffered by a thread that died"))
    assert midas.sysmsg.messages == []
    midas.cm_exit()
    assert [m.routine for m in midas.sysmsg.messages] == ["late"]


def test_a_lock_wait_is_bounded(any_implementation):
    # What turns a deadlock into an error instead of a hang: every lock wait has a bound.
    midas = any_implementation.Midas(lock_timeout=0.05)
    holding, done = threading.Event(), threading.Event()

    def hold_odb() -> None:
        with midas.odb:
            holding.set()
            done.wait(5)

    holder = threading.Thread(target=hold_odb, name="holder")
    holder.start()
    try:
        assert holding.wait(5)
        with (
            midas.sysmsg,
            pytest.raises(
                LockTimeout, match="waiting for the ODB lock held by 'holder' while holding SYSMSG"
            ),
        ):
            midas.odb.db_find_key(CLIENTS)
    finally:
        done.set()
        holder.join(5)
    assert not holder.is_alive()


def test_a_fault_where_a_lock_is_taken_leaves_it_free(any_implementation, faultline):
    midas = any_implementation.Midas(lock_timeout=0.5)
    faultline.arm("odb.locked", RuntimeError, times=1)
    with pytest.raises(RuntimeError, match=r"fault injected at 'odb\.locked'"):
        midas.cm_connect_experiment("feDAQ")
    assert midas.odb.holder is None
    assert not midas.odb.held_by_me()
    daq = midas.cm_connect_experiment("feDAQ")  # the lock was released, not leaked
    assert midas.clients() == {daq.pid: "feDAQ"}
