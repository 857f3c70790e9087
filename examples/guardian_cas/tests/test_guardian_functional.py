"""No faults: both guardians walk their states and serve their clients. The bug is latent.

These run on real threads and the real clock (a few cycles at 16 Hz, well under a second).
"""

from __future__ import annotations

import pytest
from guardian_cas.cas import Client, CorruptMessage, Server, decode, encode
from guardian_cas.core import STATES, check_updates

CYCLES = 10  # INIT -> DOWN -> PREP -> READY takes 6; the rest is margin for the server thread


def test_guardian_walks_to_the_requested_state(any_implementation):
    guardian = any_implementation.Guardian()
    screen = Client(guardian.server.endpoint)
    state = screen.subscribe("STATE")
    exectime = screen.subscribe("EXECTIME", control=True)
    guardian.run(cycles=CYCLES)

    assert guardian.states == list(STATES)
    assert [u.value for u in state.updates()] == list(STATES)
    assert check_updates(exectime, guardian) > CYCLES // 2
    assert {u.units for u in exectime.updates()} == {"seconds"}
    assert {u.kind for u in exectime.updates()} == {"long", "double"}  # it changes type
    assert len(guardian.ticks) == CYCLES


def test_operator_request_sends_the_node_down(any_implementation):
    guardian = any_implementation.Guardian()
    screen = Client(guardian.server.endpoint)
    request = screen.subscribe("REQUEST", control=True)
    screen.write("REQUEST", "DOWN")
    screen.write("REQUEST", "BOGUS")  # not a state: rejected
    screen.write("STATE", "READY")  # read-only: rejected
    guardian.run(cycles=CYCLES)

    assert guardian.states == ["INIT", "DOWN"]
    assert [u.value for u in request.updates()] == ["READY", "DOWN"]
    assert {u.units for u in request.updates()} == {""}
    assert guardian.server.rejected == [("REQUEST", "BOGUS"), ("STATE", "READY")]


# -- the library on one thread: what a stale buffer does -----------------------------------------


def make_server() -> Server:
    return Server({"EXECTIME": (0.5, "seconds"), "STATE": ("DOWN", None)})


def test_type_change_replaces_and_poisons_the_buffer():
    server = make_server()
    record = server.records["EXECTIME"]
    old = record.buffer
    server.set_params({"EXECTIME": 0})  # float -> int: a new buffer, the old slot is freed
    assert record.buffer is not old
    assert record.buffer.kind == "long"
    assert bytes(old.view) == b"\xfd" * len(old.view)


def test_stale_buffer_sends_freed_memory():
    # What process() does when a buffer is replaced between taking it and sending it, made
    # to happen on one thread: the units land in a freed slot and the client gets poison.
    server = make_server()
    stale = server.records["EXECTIME"].buffer
    server.set_params({"EXECTIME": 0})
    stale.put_units("seconds")
    with pytest.raises(CorruptMessage, match=r"EXECTIME: the value's type tag is freed memory"):
        decode(encode("EXECTIME", True, bytes(stale.view)))


def test_stale_buffer_sends_another_records_value():
    # The freed slot handed to another record: the stale buffer now reads that record's value.
    server = make_server()
    stale = server.records["EXECTIME"].buffer
    server.set_params({"EXECTIME": 0})  # EXECTIME's old slot is freed ...
    server.set_params({"STATE": 3})  # ... and STATE's new buffer takes it
    stale.put_units("seconds")
    update = decode(encode("EXECTIME", True, bytes(stale.view)))
    assert (update.kind, update.value, update.units) == ("long", 3, "seconds")


def test_bad_values_are_refused_with_a_reason():
    server = make_server()
    with pytest.raises(TypeError, match=r"a record holds an int, a float or a str, got None"):
        server.set_params({"EXECTIME": None})  # type: ignore[dict-item]
    with pytest.raises(KeyError, match=r"no record 'EXECTIM'; the server has"):
        server.set_params({"EXECTIM": 1.0})
    with pytest.raises(MemoryError, match=r"make the Server with more arena_slots"):
        Server({f"R{i}": (i, None) for i in range(3)}, arena_slots=2)
