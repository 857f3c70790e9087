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


BUGGY = pytest.param("buggy", marks=pytest.mark.xfail(strict=True, reason=BUGGY_REASON))


@pytest.fixture(params=["fixed", BUGGY])
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed schedd must pass; the buggy one must fail (strict xfail)."""
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
