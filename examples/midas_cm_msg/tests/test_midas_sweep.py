"""The sweep finds both bugs of the incident without being told where: no ``at=``, no lines.

With ``kinds=["preempt"]`` the sweep runs the threads once under the deterministic scheduler
without any preemption and records every place a thread could lose the CPU to another (each
lock acquire and release, each fault point, each start and join), then re-runs them once per
place with one thread switch forced there. The buggy MIDAS deadlocks when the client is switched
away from while it holds the ODB lock and wants SYSMSG (the watchdog takes SYSMSG, then waits
for the ODB), and its alarm check reads a stale key when it is switched away from between
enumerating a client and reading its name. The fixed MIDAS survives a switch at every one of
them. The fault points the code carries are sites like the others, not needed: with them
switched off, the lock operations alone are enough.
"""

from __future__ import annotations

import threading
from types import ModuleType

import pytest
from midas_cm_msg import buggy, core

from pytest_faultline import DeadlockError

KINDS = ["preempt"]  # the incident: a thread switched away from at the worst place


def run_threads(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # under the scheduler a deadlock is reported, never waited for


def client_and_watchdog(implementation: ModuleType) -> None:
    """A client starts and stops while the watchdog removes a crashed one."""
    midas = implementation.Midas(lock_timeout=None)  # fresh for every run
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


def alarm_check_while_a_client_stops(implementation: ModuleType) -> None:
    """The alarm check reads every client's name while the last client in the tree stops."""
    midas = implementation.Midas(lock_timeout=None)
    midas.cm_connect_experiment("mlogger")
    daq = midas.cm_connect_experiment("feDAQ")
    errors: list[str] = []

    def alarm_check() -> None:
        try:
            midas.cm_exist("mhttpd")
        except core.MidasError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    run_threads(
        threading.Thread(target=alarm_check, name="al_check"),
        threading.Thread(target=midas.cm_disconnect_experiment, args=(daq,), name="client feDAQ"),
    )
    assert errors == [], "cm_exist() read a client key deleted after it was enumerated"


@pytest.mark.faultline("fault_sweep", kinds=KINDS)
@pytest.mark.buggy_fails(raises=DeadlockError)
def test_a_switch_anywhere_never_deadlocks(implementation):
    client_and_watchdog(implementation)


@pytest.mark.faultline("fault_sweep", kinds=KINDS)
@pytest.mark.buggy_fails(raises=AssertionError)
def test_a_switch_anywhere_never_leaves_a_stale_key(implementation):
    alarm_check_while_a_client_stops(implementation)


@pytest.fixture
def without_fault_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code's fault points switched off: the sweep gets no help from them."""
    monkeypatch.setattr("midas_cm_msg.core.point", lambda name, **context: None)
    monkeypatch.setattr("midas_cm_msg.buggy.point", lambda name, **context: None)


def test_the_sweep_finds_the_inversion_at_a_lock(faultline, without_fault_points):
    found = faultline.sweep(lambda: client_and_watchdog(buggy), kinds=KINDS, raises=False)
    assert found.complete
    assert found.failures, found.report()
    for run in found.failures:
        assert isinstance(run.failure, DeadlockError), found.report()
        assert run.reproducible, found.report()
    (site,) = found.failures[0].sites
    # The client, holding the ODB lock, was switched away from as it asked for SYSMSG.
    assert (site.op, site.name) == ("T1 (client feDAQ)", "acquire SysMsg._sysmsg_lock (L1)")
    text = str(found.failures[0].failure)
    assert "T1 holds Odb._odb_lock (R1) waits SysMsg._sysmsg_lock (L1)" in text
    assert "T2 holds SysMsg._sysmsg_lock (L1) waits Odb._odb_lock (R1)" in text


def test_the_sweep_finds_the_stale_key_between_two_odb_calls(faultline, without_fault_points):
    found = faultline.sweep(
        lambda: alarm_check_while_a_client_stops(buggy), kinds=KINDS, raises=False
    )
    assert found.failures, found.report()
    assert all(run.reproducible for run in found.failures), found.report()
    # Every failing switch is in the alarm check, between enumerating a key and reading it.
    assert {run.sites[0].op for run in found.failures} == {"T1 (al_check)"}
    assert "InvalidKeyError: db_get_value" in str(found.failures[0].failure)
