"""asyncio under the same seed: a controlled event loop whose ready-queue order is a decision of
the test's decider, virtual loop time, scheduling points at asyncio primitives (and at every
await of named modules), and deadlocks among tasks reported as wait-for cycles. See
``docs/concepts/aio.rst``.

The names below load on first use: the pytest-asyncio integration (``asyncio_plugin``) lives in
this package and is imported when pytest starts, where the loop is not needed yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import explore, install_task_interleaving, replay
    from .loop import ControlledLoop

__all__ = ["ControlledLoop", "explore", "install_task_interleaving", "replay"]


def __getattr__(name: str) -> Any:
    if name == "ControlledLoop":
        from .loop import ControlledLoop

        return ControlledLoop
    if name in ("explore", "install_task_interleaving", "replay"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
