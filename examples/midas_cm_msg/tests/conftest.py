"""Fixtures for the MIDAS tests: both implementations, and program names from the test's seed."""

from __future__ import annotations

from types import ModuleType

import pytest
from midas_cm_msg import IMPLEMENTATIONS

BUGGY_REASON = (
    "the buggy MIDAS calls cm_msg() with the ODB lock held (ODB -> SYSMSG) while the watchdog "
    "takes SYSMSG -> ODB, and cm_exist() reads client keys that may have just been deleted"
)


@pytest.fixture(
    params=[
        "fixed",
        pytest.param("buggy", marks=pytest.mark.xfail(strict=True, reason=BUGGY_REASON)),
    ]
)
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed MIDAS must pass; the buggy one must fail (strict xfail)."""
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
