"""The guardian after the fix: no server thread and no clock thread.

The main loop keeps its own time: each cycle runs the state's code (about 5 ms of the 62.5 ms
period) and spends the rest of the period in ``Server.process()``, serving clients until the
next tick. Everything that touches the server happens on the main thread, so ``process()`` can
never hold a buffer another thread replaces, and no lock is needed.
"""

from __future__ import annotations

import time

from .core import PERIOD_S, BaseGuardian

# Float rounding of the clock must not cost an extra wake-up a few picoseconds before the tick.
TICK_SLACK_S = 1e-6


class Guardian(BaseGuardian):
    def run(self, cycles: int) -> None:
        """Run ``cycles`` cycles of the main loop, serving the server in each dead time."""
        start = time.monotonic()
        for k in range(cycles):
            self.ticks.append(time.monotonic())
            self.cycle()
            deadline = start + (k + 1) * PERIOD_S
            while (remaining := deadline - time.monotonic()) > TICK_SLACK_S:
                self.server.process(remaining)
