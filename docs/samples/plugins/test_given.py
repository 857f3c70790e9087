"""Hypothesis and faultline: every example gets its own faults, drawn from its own seed."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_faultline import point


def store(items: list[int], retries: int) -> list[int]:
    for attempt in range(retries + 1):
        try:
            point("db.write")
            return sorted(items)
        except ConnectionError:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


# The faultline fixture starts afresh for every example (seed, armings, events), so the
# health check about function-scoped fixtures does not apply to it.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(items=st.lists(st.integers()))
def test_store_retries_through_two_failures(faultline, items):
    faultline.arm("db.write", ConnectionError, times=2, probability=0.5)
    assert store(items, retries=2) == sorted(items)
