"""Shared test configuration. ``pytester`` comes from ``-p pytester`` in pyproject's addopts."""

from __future__ import annotations

import pytest


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Inner runs have no ini file, and pytest-asyncio warns when its loop scope is unset (the
    # suite runs with warnings as errors). pytester clears PYTEST_ADDOPTS, so set it after.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester
