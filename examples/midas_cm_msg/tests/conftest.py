"""Fixtures for the MIDAS tests: both implementations, and program names from the test's seed."""

from __future__ import annotations

from types import ModuleType

import pytest
from midas_cm_msg import IMPLEMENTATIONS

BUGGY_REASON = (
    "the buggy MIDAS calls cm_msg() with the ODB lock held (ODB -> SYSMSG) while the watchdog "
    "takes SYSMSG -> ODB, and cm_exist() reads client keys that may have just been deleted"
)


MARKER = (
    "buggy_fails(raises): the exception the incident makes the buggy implementation raise "
    "under the test's fault; its strict xfail accepts that failure and no other"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(params=["fixed", "buggy"])
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed MIDAS must pass; the buggy one must fail (strict xfail).

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
    """Without faults both implementations work: the bugs are latent."""
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def programs(faultline) -> list[tuple[str, str]]:
    """50 ``(program name, host)`` pairs in MIDAS's style, generated from the test's seed."""
    fake = faultline.fake
    return [(f"fe{fake.unique.first_name()}", fake.hostname(0)) for _ in range(50)]
