"""Hypothesis: each example draws from its own seed, derived from the example, so a failing
example replays; its armings are its own; the report groups events per example."""

from __future__ import annotations

import re

import pytest

from pytest_faultline import Faultline, actions, point

pytest.importorskip("hypothesis")

HEADER = """
from hypothesis import HealthCheck, given, settings, strategies as st
from pytest_faultline import actions, point

# The supported way: the faultline fixture starts afresh for every example, so the health
# check about function-scoped fixtures does not apply to it.
fresh_per_example = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=40,
    database=None,
    derandomize=True,
)
"""

NAIVE_AND_RETRYING = (
    HEADER
    + """
def send(n, retries):
    for attempt in range(retries + 1):
        try:
            point("net")
            return n
        except OSError:
            if attempt == retries:
                raise

@fresh_per_example
@given(n=st.integers(0, 1000))
def test_naive(faultline, n):
    faultline.arm("net", OSError, probability=0.3)
    assert send(n, retries=0) == n

@fresh_per_example
@given(n=st.integers(0, 1000))
def test_retrying(faultline, n):
    faultline.arm("net", OSError, times=2)
    assert send(n, retries=2) == n
"""
)


def test_faults_fail_naive_code_and_replay_without_flakiness(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_h=NAIVE_AND_RETRYING)
    result = pytester.runpytest("-p", "no:randomly", "--faultline-seed=5")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # Hypothesis found, shrank and replayed a failing example: no Flaky verdict, because the
    # replayed example drew the same faults from the same derived seed.
    assert "Flaky" not in out
    # Hypothesis 6.170 says "Failing test case" where earlier versions said "Falsifying example".
    assert "Falsifying example: test_naive(" in out or "Failing test case: test_naive(" in out
    result.stdout.fnmatch_lines(
        [
            "*OSError: fault injected at 'net'*",
            "*faultline (call)*",
            "  example #*: seed=* n=*",
            "    *raise net: raise OSError (hit 1)",
        ]
    )
    falsified = re.search(r"n=(\d+),\n", out)
    assert falsified
    # Same session seed, same example found again (Hypothesis derandomized), same faults.
    again = pytester.runpytest("-p", "no:randomly", "--faultline-seed=5")
    again.assert_outcomes(passed=1, failed=1)
    assert f"n={falsified.group(1)},\n" in again.stdout.str()


def test_each_example_has_its_own_armings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_h=HEADER
        + """
SEEN = []

@fresh_per_example
@given(n=st.integers(0, 10))
def test_fresh(faultline, n):
    arming = faultline.arm("p", actions.Watch())
    point("p")
    point("p")
    # Without a fresh start, the armings and hits of earlier examples would pile up here.
    assert len(faultline.armings()) == 1
    assert arming.hits == 2
    assert faultline.hits("p") == 2
    SEEN.append(faultline.seed)

def test_seeds_follow_the_examples():
    assert len(SEEN) > 5
    assert len(set(SEEN)) > 1
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_example_block_derives_its_seed_from_the_key(faultline: Faultline) -> None:
    def draws() -> list[float]:
        return [faultline.random.random() for _ in range(3)]

    with faultline.example("n=1"):
        first = draws()
        faultline.arm("eco.example", actions.Raise(OSError))
        with pytest.raises(OSError):
            point("eco.example")
    with faultline.example("n=1"):
        assert draws() == first  # the same example: the same draws
        point("eco.example")  # the arming of the earlier example is gone
    with faultline.example("n=2"):
        assert draws() != first
    assert [e.name for e in faultline.events if e.kind == "example"] == ["#1", "#2", "#3"]
    assert faultline.armings() == []
