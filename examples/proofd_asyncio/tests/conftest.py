"""Both implementations: under a fault the fixed server must pass, the buggy one must fail."""

from __future__ import annotations

from types import ModuleType

import pytest
from proofd_asyncio import IMPLEMENTATIONS

BUGGY_REASON = (
    "the buggy server leaves the removal of a dropped client's session to a fire-and-forget "
    "task that removes by client id: a client that reconnected first loses its new session"
)


@pytest.fixture(
    params=[
        "fixed",
        pytest.param(
            "buggy",
            marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=BUGGY_REASON),
        ),
    ]
)
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed server must pass; the buggy one must fail (strict xfail)."""
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=["fixed", "buggy"])
def any_implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Without faults both implementations work: the bug is latent."""
    return IMPLEMENTATIONS[request.param]
