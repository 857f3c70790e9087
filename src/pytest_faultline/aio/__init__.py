"""asyncio under the same seed: a controlled event loop whose ready-queue order is a decision of
the test's decider, virtual loop time, scheduling points at asyncio primitives (and at every
await of named modules), and deadlocks among tasks reported as wait-for cycles. See
``docs/concepts/aio.rst``."""

from __future__ import annotations

from .api import explore, install_task_interleaving, replay
from .loop import ControlledLoop

__all__ = ["ControlledLoop", "explore", "install_task_interleaving", "replay"]
