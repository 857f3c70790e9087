"""Fixtures for the guardian tests: both implementations, and an operator screen."""

from __future__ import annotations

from types import ModuleType

import pytest
from guardian_cas import IMPLEMENTATIONS

BUGGY_REASON = (
    "the buggy guardian serves CAS from its own thread: process() reads a record's buffer "
    "while the main loop replaces it, so a control subscriber receives a corrupted message"
)


MARKER = (
    "buggy_fails(raises): the exception the incident makes the buggy implementation raise "
    "under the test's fault; its strict xfail accepts that failure and no other"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(params=["fixed", "buggy"])
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed guardian must pass; the buggy one must fail (strict xfail).

    The test names the buggy one's failure with ``@pytest.mark.buggy_fails(raises=SomeError)``: a
    typo'd scenario, or a crash of another kind, is then an error, never a catch."""
    if request.param == "buggy":
        mark = request.node.get_closest_marker("buggy_fails")
        if mark is None:
            pytest.fail(
                f"{request.node.nodeid} uses the 'implementation' fixture: mark it "
                f"@pytest.mark.buggy_fails(raises=<the exception the buggy implementation raises>)",
                pytrace=False,
            )
        xfail = pytest.mark.xfail(strict=True, raises=mark.kwargs["raises"], reason=BUGGY_REASON)
        request.applymarker(xfail)
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=["fixed", "buggy"])
def any_implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Without faults (or where the bug cannot show) both implementations work."""
    return IMPLEMENTATIONS[request.param]
