"""A long sweep shows its progress in pytest's terminal by itself (past the capture, never in
the test's captured output), a quiet terminal shows none, and under xdist the controller prints
the session sweep's estimate for its workers."""

from __future__ import annotations

import pytest

from pytest_faultline.sweep import session

pytest_plugins = ["pytester"]

SLOW = """
import pytest
from pytest_faultline import InjectedFault, point

def steps(n):
    print("output of the body")
    for k in range(n):
        try:
            point(f"step{k}")
        except InjectedFault:
            pass

@pytest.mark.faultline("fault_sweep", kinds=["raise"])
def test_survives():
    steps(5)

@pytest.mark.faultline("fault_sweep", kinds=["raise"])
def test_fails():
    steps(2)
    point("unguarded")  # the injected fault escapes here
"""


@pytest.fixture
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress from the first run and after every run (the real thresholds are seconds)."""
    monkeypatch.setattr(session, "LIVE_FIRST_S", 0.0)
    monkeypatch.setattr(session, "LIVE_EVERY_S", 0.0)


def test_a_long_sweep_writes_its_progress_to_the_terminal(
    pytester: pytest.Pytester, at_once: None
) -> None:
    pytester.makepyfile(test_slow=SLOW)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-k", "survives")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "faultline sweep test_slow.py::test_survives: 1 runs, 0 failed, 1 of 5 single faults "
            "run (20%), *s",
            "faultline sweep test_slow.py::test_survives: 5 runs, 0 failed, 5 of 5 single faults "
            "run (100%), *s",
            "faultline sweep test_slow.py::test_survives: 5 runs, * (done)",
        ]
    )


def test_progress_never_lands_in_the_captured_output(
    pytester: pytest.Pytester, at_once: None
) -> None:
    pytester.makepyfile(test_slow=SLOW)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-k", "fails")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    captured = text.split("Captured stdout call", 1)[1].split("faultline (call)", 1)[0]
    assert "output of the body" in captured
    assert "faultline sweep test_slow.py" not in captured
    # ... but in the terminal, before the test's outcome.
    assert text.index("faultline sweep test_slow.py::test_fails: 3 runs, 1 failed") < text.index(
        "FAILURES"
    )


def test_a_quiet_terminal_shows_no_progress(pytester: pytest.Pytester, at_once: None) -> None:
    pytester.makepyfile(test_slow=SLOW)
    result = pytester.runpytest("-p", "no:randomly", "-q", "-k", "survives")
    result.assert_outcomes(passed=1)
    assert "runs, 0 failed" not in result.stdout.str()


def test_a_short_sweep_writes_no_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slow=SLOW)
    result = pytester.runpytest("-p", "no:randomly", "-k", "survives")
    result.assert_outcomes(passed=1)
    assert "runs, 0 failed" not in result.stdout.str()  # done well within LIVE_FIRST_S


SESSION = """
import pytest
from pytest_faultline import point

@pytest.mark.faultline_sweep
@pytest.mark.parametrize("n", range(4))
def test_opted_in(n):
    point("step")

def test_not_marked():
    pass
"""


def test_under_xdist_the_controller_prints_the_estimate_for_its_workers(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_session=SESSION)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "-n",
        "2",
        "--faultline-sweep=raise",
        "--faultline-sweep-all",
        "--faultline-budget=2",
    )
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            "faultline: sweeping all 5 collected tests with raise on 2 xdist workers: each test's "
            "sweep runs on one worker (N sites x 1 kinds + 1 runs of its body); the tests spread "
            "over the workers, the runs of one sweep do not; --faultline-budget bounds each "
            "sweep to 2 s, the whole to 10 s of worker time, about 5 s of wall time",
        ]
    )
    # Printed once, by the controller, before the tests' results.
    text = result.stdout.str()
    assert text.count("faultline: sweeping") == 1
    assert text.index("faultline: sweeping") < text.index("FAILURES")
    # The tests spread over both workers.
    workers = {line.split("]")[0] for line in result.outlines if line.startswith("[gw")}
    assert workers == {"[gw0", "[gw1"}, result.outlines
