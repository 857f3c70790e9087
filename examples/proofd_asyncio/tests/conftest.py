"""Both implementations: under a fault the fixed server must pass, the buggy one must fail."""

from __future__ import annotations

from types import ModuleType

import pytest
from proofd_asyncio import IMPLEMENTATIONS

BUGGY_REASON = (
    "the buggy server leaves the removal of a dropped client's session to a fire-and-forget "
    "task that removes by client id: a client that reconnected first loses its new session"
)


MARKER = (
    "buggy_fails(raises): the exception the incident makes the buggy implementation raise "
    "under the test's fault; its strict xfail accepts that failure and no other"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(params=["fixed", "buggy"])
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed server must pass; the buggy one must fail (strict xfail).

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
    """Without faults both implementations work: the bug is latent."""
    return IMPLEMENTATIONS[request.param]
