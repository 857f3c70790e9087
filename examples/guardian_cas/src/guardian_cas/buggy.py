"""The guardian as it was: the CAS server on its own thread, as the library suggests.

1. ``serve_in_thread`` runs ``Server.process()`` on a thread of its own ("cas-server"), and a
   separate clock thread ticks the 16 Hz main loop.
2. The main loop pushes status into the server from the main thread; client writes push from
   the server thread. Both are wrapped in one lock, the daemon's first attempt at a fix.
3. The lock does not help: ``process()`` reads the records' buffers without it, so the main
   thread can replace a buffer that ``process()`` is halfway through serialising. The units
   string of a control message is then copied into a freed slot and the subscriber receives
   freed memory, or another record's value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from .cas import Value, serve_in_thread
from .core import PERIOD_S, BaseGuardian, ServerDied

SERVER_POLL_S = 0.1
TICK_BOUND_S = 5.0  # the longest the main loop waits for a tick before it gives up
STOP_BOUND_S = 5.0


class Clock(threading.Thread):
    """The separate clock thread: sets ``tick`` every ``period`` seconds until stopped."""

    def __init__(self, period: float) -> None:
        super().__init__(name="guardian-clock", daemon=True)
        self.period = period
        self.tick = threading.Event()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.period):
            self.tick.set()

    def stop(self) -> None:
        self._stopping.set()
        self.join(STOP_BOUND_S)
        if self.is_alive():
            raise RuntimeError(f"the clock thread did not stop within {STOP_BOUND_S} s")


class Guardian(BaseGuardian):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def push(self, values: Mapping[str, Value]) -> None:
        # Every set_params/update pair under the daemon's lock: it keeps the two writers (main
        # loop and client writes) apart, but process() reads the records without it.
        with self.lock:
            super().push(values)

    def run(self, cycles: int) -> None:
        """Run ``cycles`` cycles of the main loop, with the server and the clock on threads."""
        server = serve_in_thread(self.server, SERVER_POLL_S)
        clock = Clock(PERIOD_S)
        clock.start()
        try:
            for _ in range(cycles):
                if not clock.tick.wait(TICK_BOUND_S):
                    raise RuntimeError(f"no clock tick within {TICK_BOUND_S} s")
                clock.tick.clear()
                self.ticks.append(time.monotonic())
                self.cycle()
        finally:
            clock.stop()
            server.stop()
        if server.error is not None:
            raise ServerDied(f"the CAS server thread died: {server.error!r}") from server.error
