"""Thread preemption: the guardian's threads under many controlled interleavings.

Each test body runs under the deterministic scheduler: the threads it starts take turns at
every synchronisation operation and fault point, ``time.sleep``/``time.monotonic`` run on a
virtual clock (so the 16 Hz loop costs no real time), and a failing schedule comes with a token
that replays it exactly.

Where the race is found: the window is in ``Server._send``, between taking a record's buffer
and copying the units into it. With ``preempt="sync"`` (the default) the only scheduling point
inside it is the fault point ``cas.ctrl_units``; without that point the window has none and
the race cannot be found that way. With ``preempt="lines", modules=["guardian_cas.cas"]`` every
line of the library is a scheduling point, and the race is found with the point switched off
(``test_library_race_is_found_line_by_line``; on the whole guardian, line-level search needs a
few hundred to a thousand schedules, so the guardian tests use the point).
"""

from __future__ import annotations

import threading
import time
from types import ModuleType

import pytest
from guardian_cas import buggy, cas, fixed
from guardian_cas.cas import Client, CorruptMessage, Server
from guardian_cas.core import PERIOD_S, BaseGuardian, check_updates

RUNS = 300
CYCLES = 8  # 0.5 s of virtual time: 2-3 state changes, each replacing EXECTIME's buffer twice
JOIN_BOUND_S = 5.0
BASE_CHANNELS = ["STATE", "EXECTIME", "EXECTIME_LAST"]


def operated_guardian(module: ModuleType, channels: list[str], *, control: bool) -> None:
    """One run of the system: a guardian, an operator screen subscribed to ``channels``, and an
    operator who writes a request from another thread as the loop starts."""
    guardian = module.Guardian()
    screen = Client(guardian.server.endpoint)
    subscriptions = [screen.subscribe(name, control=control) for name in channels]
    operator = threading.Thread(target=screen.write, args=("REQUEST", "PREP"), name="operator")
    operator.start()
    guardian.run(cycles=CYCLES)
    operator.join(JOIN_BOUND_S)
    for subscription in subscriptions:
        check_updates(subscription, guardian)


@pytest.mark.faultline("thread_preemption", runs=RUNS, strategy="pct", depth=3)
@pytest.mark.buggy_fails(raises=CorruptMessage)
def test_control_subscriber_gets_clean_messages_in_every_schedule(implementation):
    # MEDM's view: a control subscription to EXECTIME, whose units ("seconds") are copied
    # through the record's buffer. The buggy guardian fails within a few dozen schedules.
    operated_guardian(implementation, ["EXECTIME"], control=True)


def test_buggy_corruption_replays_exactly_from_its_token(faultline):
    def scenario() -> None:
        operated_guardian(buggy, ["EXECTIME"], control=True)

    found = faultline.explore(scenario, runs=RUNS, strategy="pct", depth=3, raises=False)
    assert isinstance(found.failure, CorruptMessage), found.summary()
    assert "EXECTIME: the value's type tag is freed memory (0xfd)" in str(found.failure)
    assert found.reproducible
    assert found.token is not None

    with pytest.raises(CorruptMessage) as replayed:
        faultline.replay(scenario, found.token)
    assert str(replayed.value) == str(found.failure)  # the very same bytes
    again = faultline.explore(scenario, token=found.token, raises=False)  # the record of a replay
    assert again.token == found.token
    assert again.steps == found.steps  # the same interleaving, step for step


@pytest.mark.faultline("thread_preemption", runs=RUNS, strategy="pct", depth=3)
def test_base_subscribers_never_see_the_race(any_implementation):
    # The incident's blind spot, kept on purpose: this passes on BOTH guardians, in every
    # schedule. A base subscription copies a record's buffer in one step and never writes into
    # it; only a control subscription holds the buffer while it copies the units string in. The
    # incident's test rig subscribed to base records only, so it ran for two weeks without a
    # crash while the control room's MEDM screens (control subscriptions) kept crashing the
    # production nodes. A test that does not use the code path that races cannot find the race.
    operated_guardian(any_implementation, BASE_CHANNELS, control=False)


def ticking_guardian(module: ModuleType) -> BaseGuardian:
    guardian = module.Guardian()
    screen = Client(guardian.server.endpoint)
    screen.subscribe("EXECTIME", control=True)

    def operator() -> None:
        for request in ("DOWN", "READY", "PREP"):
            time.sleep(0.3)  # virtual: requests land mid-period, so process() returns early
            screen.write("REQUEST", request)

    thread = threading.Thread(target=operator, name="operator")
    thread.start()
    guardian.run(cycles=32)
    thread.join(JOIN_BOUND_S)
    return guardian


@pytest.mark.faultline("thread_preemption", runs=20, strategy="pct")
def test_fixed_loop_keeps_16_hz_on_the_virtual_clock():
    guardian = ticking_guardian(fixed)
    periods = [b - a for a, b in zip(guardian.ticks, guardian.ticks[1:], strict=False)]
    # Exact to a microsecond: only a virtual clock is that steady, and only a loop that keeps
    # its own deadlines (not "sleep a period after the work") holds it with 5 ms of logic.
    assert len(periods) == 31
    assert max(abs(p - PERIOD_S) for p in periods) < 1e-6, periods
    # Its dead time went to the server: many process() calls, all on the main thread.
    assert guardian.server.processed > 32


# -- the library's own race, found line by line -------------------------------------------------


@pytest.fixture
def without_fault_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's fault point switched off: the scheduler gets no help from it."""
    monkeypatch.setattr("guardian_cas.cas.point", lambda name, **context: None)


def push_type_changes(*, serve_in_thread: bool) -> None:
    """The library alone: EXECTIME flips between float and int (a new buffer each time), one
    control subscriber. The server is served from its own thread, or from the pushing thread."""
    server = Server({"EXECTIME": (0.0, "seconds")})
    subscription = Client(server.endpoint).subscribe("EXECTIME", control=True)
    values: list[float] = [0.5, 0, 1.5, 0, 2.5, 0]
    thread = cas.serve_in_thread(server) if serve_in_thread else None
    for value in values:
        server.set_params({"EXECTIME": value})
        server.update()
        if thread is None:
            server.process(0)
    if thread is not None:
        thread.stop()
    for update in subscription.updates():
        assert update.units == "seconds", update
        assert update.value in [0.0, *values], update


@pytest.mark.faultline(
    "thread_preemption", runs=RUNS, strategy="pct", preempt="lines", modules=["guardian_cas.cas"]
)
@pytest.mark.parametrize(
    "serve_in_thread",
    [
        pytest.param(False, id="served-by-the-pushing-thread"),
        pytest.param(
            True,
            id="served-from-its-own-thread",
            # The replaced buffer is read as garbage: a tag check catches it (CorruptMessage),
            # or the garbage decodes to a wrong update (the loop's own check fails).
            marks=pytest.mark.xfail(
                strict=True,
                raises=(CorruptMessage, AssertionError),
                reason="process() holds a replaced buffer",
            ),
        ),
    ],
)
def test_library_race_is_found_line_by_line(without_fault_point, serve_in_thread):
    # Every line of the library is a scheduling point, so the race needs no fault point: the
    # threaded server is caught within a few dozen schedules, the single-threaded one never.
    push_type_changes(serve_in_thread=serve_in_thread)
