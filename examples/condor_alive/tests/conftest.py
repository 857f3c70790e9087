"""Fixtures for the ALIVE tests: both implementations, a running schedd, seeded claim ids."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from condor_alive import IMPLEMENTATIONS
from condor_alive.core import BaseSchedd, Claim

BUGGY_REASON = (
    "the buggy schedd reads a failed read of the claim id as an unknown claim (-1), so the "
    "startd kills its job"
)


MARKER = (
    "buggy_fails(raises): the exception the incident makes the buggy implementation raise "
    "under the test's fault; its strict xfail accepts that failure and no other"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(params=["fixed", "buggy"])
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed schedd must pass; the buggy one must fail (strict xfail).

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


@pytest.fixture
def claim(faultline) -> Claim:
    """A claim id and job id in HTCondor's style, generated from the test's seed."""
    fake = faultline.fake
    claim_id = (
        f"<{fake.ipv4_private()}:{fake.port_number()}>"
        f"#{fake.random_int(1_000_000_000, 1_999_999_999)}"
        f"#{fake.random_int(1, 999)}#{fake.hexify('^' * 16)}"
    )
    return Claim(claim_id=claim_id, job_id=f"{fake.random_int(1, 99_999)}.0")


def start_schedd(module: ModuleType, *claims: Claim) -> BaseSchedd:
    schedd: BaseSchedd = module.Schedd()
    schedd.claims.update({c.claim_id: c for c in claims})
    return schedd.start()


@pytest.fixture
def schedd_for(request: pytest.FixtureRequest) -> Iterator:
    """``schedd_for(module, *claims)`` starts a schedd that knows ``claims``; stopped after."""
    started: list[BaseSchedd] = []

    def make(module: ModuleType, *claims: Claim) -> BaseSchedd:
        schedd = start_schedd(module, *claims)
        started.append(schedd)
        return schedd

    yield make
    for schedd in started:
        schedd.stop()
