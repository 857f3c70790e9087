"""The sweep finds the guardian's race without being told where: no ``at=``, no schedules.

With ``kinds=["preempt", "preempt_step"]`` the sweep runs the guardian once under the
deterministic scheduler without any preemption (the 16 Hz loop on a virtual clock) and records
every place a thread could lose the CPU to another: each event set and wait, each lock, each
fault point, each thread start and join. Then it re-runs it once per place and kind with one
switch forced there: ``preempt`` lets the other threads run until they block, ``preempt_step``
lets one of them run a single step and then comes back.

The buggy guardian is caught by ``preempt_step`` where the main loop wakes the server
(``Endpoint._wake.set()``) just before a state change: the server thread runs to the fault
point inside ``_send`` (holding EXECTIME's buffer), the main loop comes back and replaces the
buffer, and the control subscriber receives freed memory. The fixed guardian serves from the
main loop: the only other thread is the operator's, and no switch breaks it.

The fault point ``cas.ctrl_units`` is what makes the window a scheduling point at all (as in
``test_guardian_preemption``): without it, finding the race needs line granularity.
"""

from __future__ import annotations

import threading
from types import ModuleType

import pytest
from guardian_cas import buggy
from guardian_cas.cas import Client, CorruptMessage
from guardian_cas.core import check_updates

KINDS = ["preempt", "preempt_step"]  # the incident: the server thread preempted mid-message
CYCLES = 8  # 0.5 s of virtual time: 2-3 state changes, each replacing EXECTIME's buffer twice
JOIN_BOUND_S = 5.0


def operated_guardian(module: ModuleType) -> None:
    """A guardian, an operator screen with a control subscription to EXECTIME, and an operator
    who writes a request from another thread as the loop starts. Fresh for every run."""
    guardian = module.Guardian()
    screen = Client(guardian.server.endpoint)
    subscription = screen.subscribe("EXECTIME", control=True)
    operator = threading.Thread(target=screen.write, args=("REQUEST", "PREP"), name="operator")
    operator.start()
    guardian.run(cycles=CYCLES)
    operator.join(JOIN_BOUND_S)
    check_updates(subscription, guardian)


@pytest.mark.faultline("fault_sweep", kinds=KINDS)
@pytest.mark.buggy_fails(raises=CorruptMessage)
def test_a_switch_anywhere_never_corrupts_a_control_message(implementation):
    operated_guardian(implementation)


def test_the_sweep_finds_the_wake_before_a_state_change(faultline):
    found = faultline.sweep(lambda: operated_guardian(buggy), kinds=KINDS, raises=False)
    assert found.complete
    assert found.failures, found.report()
    for run in found.failures:
        assert isinstance(run.failure, CorruptMessage), found.report()
        assert run.reproducible, found.report()
    first = found.failures[0]
    (site,) = first.sites
    assert found.kinds[first.faults[0].kind] == "preempt_step"
    assert (site.op, site.name) == ("T0 (main)", "set Endpoint._wake (E1)")
    assert "EXECTIME: the value's type tag is freed memory (0xfd)" in str(first.failure)
    # A switch that lets the server finish its message (preempt) never breaks it.
    assert {found.kinds[run.faults[0].kind] for run in found.failures} == {"preempt_step"}
