"""Fixtures for the guardian tests: both implementations, and an operator screen."""

from __future__ import annotations

from types import ModuleType

import pytest
from guardian_cas import IMPLEMENTATIONS

BUGGY_REASON = (
    "the buggy guardian serves CAS from its own thread: process() reads a record's buffer "
    "while the main loop replaces it, so a control subscriber receives a corrupted message"
)


@pytest.fixture(
    params=[
        "fixed",
        pytest.param("buggy", marks=pytest.mark.xfail(strict=True, reason=BUGGY_REASON)),
    ]
)
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed guardian must pass; the buggy one must fail (strict xfail)."""
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=["fixed", "buggy"])
def any_implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Without faults (or where the bug cannot show) both implementations work."""
    return IMPLEMENTATIONS[request.param]
