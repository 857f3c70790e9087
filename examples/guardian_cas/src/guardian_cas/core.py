"""What the buggy and the fixed guardian share: the node's state machine, its channels, and how
it pushes status into the server. They differ only in how the loop and the server share time.

A guardian node runs a state machine at 16 Hz: each cycle runs the current state's code (about
5 ms), then pushes status: ``EXECTIME`` (seconds spent in the state, units "seconds") every
cycle, and on a state change ``STATE``, ``EXECTIME_LAST`` and ``EXECTIME`` again, reset to 0. An
operator writes ``REQUEST`` to send the node to another state.

Entering a state sets ``exectime = 0``, a Python int; the next cycle makes it a float. The
library's records follow their values' type, so ``EXECTIME``'s buffer is replaced twice per
state change: ordinary use of the library, and what the race needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from .cas import Server, Subscription, Value

PERIOD_S = 1 / 16  # the main loop's rate: 16 Hz (exact in binary)
LOGIC_S = 0.005  # what one cycle of a state's code takes
STATES = ("INIT", "DOWN", "PREP", "READY")
CYCLES_PER_STATE = 2  # a state's code finishes after this many cycles
UNITS = {"EXECTIME": "seconds", "EXECTIME_LAST": "seconds"}


class ServerDied(RuntimeError):
    """The CAS server stopped serving: in the incident, the whole daemon segfaulted."""


class BaseGuardian:
    """One guardian node: its state machine and its CAS server. ``run(cycles)`` is per
    implementation."""

    def __init__(self) -> None:
        self.state = STATES[0]
        self.request = STATES[-1]
        self.cycles_in_state = 0
        self.state_started = time.monotonic()
        self.exectime: float = 0
        initial: dict[str, tuple[Value, str | None]] = {
            "STATE": (self.state, None),
            "REQUEST": (self.request, None),
            "EXECTIME": (0, UNITS["EXECTIME"]),
            "EXECTIME_LAST": (0, UNITS["EXECTIME_LAST"]),
        }
        self.published: dict[str, list[Value]] = {name: [v] for name, (v, _) in initial.items()}
        self.states = [self.state]
        self.ticks: list[float] = []  # time.monotonic() at the start of every cycle
        self.server = Server(initial, on_write=self.on_write)

    # -- what both implementations do the same way --------------------------------------------

    def cycle(self) -> None:
        """One cycle of the main loop: the state's code, then the status pushes."""
        time.sleep(LOGIC_S)  # the state's code
        self.cycles_in_state += 1
        self.exectime = time.monotonic() - self.state_started
        self.push({"EXECTIME": self.exectime})
        if self.cycles_in_state >= CYCLES_PER_STATE and self.state != self.request:
            here, there = STATES.index(self.state), STATES.index(self.request)
            self.push({"EXECTIME_LAST": self.exectime})
            self.enter(STATES[here + (1 if there > here else -1)])
            self.push({"STATE": self.state, "EXECTIME": self.exectime})

    def enter(self, state: str) -> None:
        self.state = state
        self.states.append(state)
        self.cycles_in_state = 0
        self.state_started = time.monotonic()
        self.exectime = 0

    def push(self, values: Mapping[str, Value]) -> None:
        """Push status into the server (the buggy daemon wraps this in its lock)."""
        for name, value in values.items():
            self.published[name].append(value)
        self.server.set_params(values)
        self.server.update()

    def on_write(self, name: str, value: Value) -> bool:
        """A client wrote a channel: only REQUEST, and only a known state, is accepted."""
        if name != "REQUEST" or value not in STATES:
            return False
        self.request = str(value)
        self.push({"REQUEST": self.request})
        return True

    def run(self, cycles: int) -> None:
        raise NotImplementedError


def check_updates(subscription: Subscription, guardian: BaseGuardian) -> int:
    """What an operator screen must see: every message decodes (else :class:`CorruptMessage`),
    carries a value the node published for that channel, and, for a control subscription, the
    channel's units. Returns how many messages were checked."""
    updates = subscription.updates()
    for update in updates:
        assert update.name == subscription.name, f"a message for {update.name} on {subscription}"
        assert update.value in guardian.published[update.name], (
            f"{update.name} = {update.value!r} was never published; "
            f"published: {guardian.published[update.name]}"
        )
        if subscription.control:
            assert update.units == UNITS.get(update.name, ""), f"bad units in {update}"
    return len(updates)
