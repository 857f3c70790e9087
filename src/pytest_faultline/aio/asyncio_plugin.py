"""pytest-asyncio (>= 1.4) integration: faultline provides the event loop of the tests that
explore task orders, so their async fixtures and body share the controlled loop.

pytest-asyncio asks every implementation of ``pytest_asyncio_loop_factories`` for a mapping of
loop factories per test (and refuses an answer of None), so this plugin answers for every asyncio
test: faultline's :class:`~.loop.ControlledLoop` for tests with a ``task_interleaving`` scenario
(by marker or ``--faultline``), and asyncio's own ``new_event_loop`` (what pytest-asyncio uses
without a factory) for every other test. One factory per test keeps test ids unchanged on
pytest >= 8.4. Registered only when pytest-asyncio's hook exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

__all__ = ["ASYNCIO_PLUGIN", "LoopFactories", "wants_controlled_loop"]

ASYNCIO_PLUGIN = "faultline-asyncio"
SCENARIO = "task_interleaving"


def wants_controlled_loop(item: pytest.Item, scenarios: tuple[str, ...]) -> bool:
    """Whether ``item`` explores task orders (marker or ``--faultline``)."""
    if SCENARIO in scenarios:
        return True
    return any(m.args[:1] == (SCENARIO,) for m in item.iter_markers("faultline"))


def _default_loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


class LoopFactories:
    """The ``pytest_asyncio_loop_factories`` hook implementation."""

    def __init__(self, scenarios: tuple[str, ...]) -> None:
        self.scenarios = scenarios

    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], Any]]:
        if wants_controlled_loop(item, self.scenarios):
            # Imported here, not when pytest starts: most asyncio tests never explore task orders.
            from .loop import ControlledLoop

            return {"faultline": ControlledLoop}
        return {"asyncio": _default_loop}
