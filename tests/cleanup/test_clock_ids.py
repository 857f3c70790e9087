"""Incident 000's reconnect bug: a freed client id handed out again too soon.

A periodic check (``threading.Timer``, every 10 s) disconnects clients not heard from for 60 s.
The clock jumps 75 s right after A's heartbeat (a suspended VM, a stepped clock), so the check
disconnects A and frees its id; B connects; then A's late reconnect arrives with its old id.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cleanup_apps import ImmediateIds, QuarantinedIds, Server, StaleHandle

from pytest_faultline.cleanup import ClockTimer
from pytest_faultline.controller import Faultline

JUMP = pytest.mark.faultline("clock_jump", at="server.heartbeat", seconds=75)


@pytest.fixture
def immediate(faultline: Faultline) -> Iterator[Server]:
    _ = faultline.clock  # the server's timers run on the test's clock: start it first
    server = Server(ImmediateIds())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def quarantined(faultline: Faultline) -> Iterator[Server]:
    _ = faultline.clock
    server = Server(QuarantinedIds())
    server.start()
    yield server
    server.stop()


def disconnect_reconnect(server: Server) -> tuple[int, int, int]:
    a = server.connect("A")
    server.heartbeat(a)  # the clock jumps here; the periodic checks fire during the jump
    assert server.disconnected == ["A"], "the periodic check should have dropped A"
    b = server.connect("B")
    return a, b, server.reconnect("A", a)  # A's late message: it comes back with its old id


def test_without_a_jump_nobody_is_disconnected(immediate: Server) -> None:
    a = immediate.connect("A")  # time stands still: the checks never fire
    immediate.heartbeat(a)
    assert immediate.disconnected == []
    assert immediate.checks == 0
    assert isinstance(immediate._timer, ClockTimer)


@JUMP
def test_immediate_reuse_gives_a_reconnecting_clients_id_away(
    immediate: Server, faultline: Faultline
) -> None:
    with pytest.raises(StaleHandle, match="client id 101 of 'A' was given to 'B'"):
        disconnect_reconnect(immediate)
    assert immediate.checks == 7  # at +10 s ... +70 s, each re-arming the next
    (jump,) = [e for e in faultline.events if e.kind == "jump"]
    assert jump.name == "server.heartbeat"
    assert jump.detail == "clock jumps +75s cid=101 (hit 1)"


@JUMP
def test_quarantined_ids_let_the_client_reconnect(quarantined: Server) -> None:
    a, b, back = disconnect_reconnect(quarantined)
    assert (a, b, back) == (101, 102, 101)


@JUMP
def test_quarantine_ends_after_its_time(quarantined: Server, faultline: Faultline) -> None:
    a = quarantined.connect("A")
    quarantined.heartbeat(a)  # jumps once: the scenario fires on the first arrival only
    quarantined.heartbeat(quarantined.connect("B"))
    assert quarantined.disconnected == ["A"]
    assert quarantined.connect("C") == 103  # A's id still quarantined
    faultline.clock.advance(QuarantinedIds.QUARANTINE_S)
    assert quarantined.disconnected == ["A", "B", "C"]
    assert quarantined.connect("D") == 101
