"""Hooks pytest-faultline offers to other plugins and conftests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .registry import Registry


@pytest.hookspec(historic=True)
def pytest_faultline_scenarios(registry: Registry) -> None:
    """Register scenarios: call ``registry.add(name, func)`` for each.

    Called once at configure time, after the built-ins are registered.
    """


@pytest.hookspec
def pytest_faultline_failure(item: pytest.Item, token: str, record: dict[str, Any]) -> None:
    """Called with the replay token of each test that failed under faults (for CI uploads)."""
