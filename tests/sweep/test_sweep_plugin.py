"""The ``fault_sweep`` scenario end to end: the report in the failure, a replay token that
re-runs one fault, the JSON report, the summary of passing sweeps, and bad parameters."""

from __future__ import annotations

import json
import re

import pytest

BANK = """
import pytest
from pytest_faultline import InjectedFault, point

def transfer(accounts, careful):
    point("bank.debit")
    accounts["a"] -= 30
    try:
        point("bank.credit")
        accounts["b"] += 30
    except InjectedFault:
        if careful:
            accounts["a"] += 30
        raise

@pytest.mark.faultline("fault_sweep", kinds=["raise"])
@pytest.mark.parametrize("careful", [False, True])
def test_money_is_conserved(careful):
    accounts = {"a": 100, "b": 0}
    try:
        transfer(accounts, careful)
    except InjectedFault:
        pass
    assert sum(accounts.values()) == 100, accounts
"""


def test_the_failure_shows_the_table_and_a_replay_per_failing_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bank=BANK)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*faultline sweep: 2 sites, 2 of 2 single faults in *: 1 failed",
            "*site*where*raise",
            "*point bank.debit #1*test_bank.py:5*ok",
            "*point bank.credit #1*test_bank.py:8*FAIL",
            "*FAIL raise at point bank.credit #1 (test_bank.py:8): AssertionError: *",
            "*replay: pytest 'test_bank.py::test_money_is_conserved?False?' --faultline-replay=*",
            "*faultline sweeps*",
            "test_bank.py::test_money_is_conserved?True?: 2 sites, 2 of 2 single faults*no failure",
        ]
    )


def test_the_token_replays_that_one_fault_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=BANK)
    first = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    token = re.search(r"--faultline-replay=(\S+)", first.stdout.str())
    assert token is not None
    again = pytester.runpytest(
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "test_bank.py::test_money_is_conserved[False]",
        f"--faultline-replay={token.group(1)}",
    )
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(
        [
            "*replayed the run of its token: AssertionError: *",
            f"token:  {token.group(1)}",
            "*raise point bank.credit #1: raise (fault sweep)",
        ]
    )
    assert "point bank.debit #1: raise" not in again.stdout.str()  # no other run ran


def test_the_json_report_carries_the_sweep(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=BANK)
    pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--faultline-report=r.json")
    tests = json.loads((pytester.path / "r.json").read_text())["tests"]
    by_id = {t["nodeid"]: t for t in tests}
    (failing,) = by_id["test_bank.py::test_money_is_conserved[False]"]["sweeps"]
    assert failing["kinds"] == ["raise"]
    assert failing["complete"] is True
    assert [(r["site"], r["results"]) for r in failing["rows"]] == [
        ("point bank.debit #1", {"raise": "pass"}),
        ("point bank.credit #1", {"raise": "fail"}),
    ]
    (failure,) = failing["failures"]
    assert failure["faults"] == "raise at point bank.credit #1 (test_bank.py:8)"
    assert failure["replay"].endswith(failure["token"])
    assert failure["reproducible"] is True
    (passing,) = by_id["test_bank.py::test_money_is_conserved[True]"]["sweeps"]
    assert passing["failures"] == []


def test_bad_parameters_fail_at_setup_with_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faultline("fault_sweep", kinds=["disconect"])
        def test_x():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ScenarioError: faultline scenario 'fault_sweep': unknown fault kind 'disconect' "
            "(did you mean 'disconnect'?); kinds are names among *"
        ]
    )


SESSION = """
import pytest
from pytest_faultline import InjectedFault, point

def careful():
    try:
        point("step")
    except InjectedFault:
        pass

@pytest.mark.faultline_sweep
def test_opted_in():
    careful()

def test_not_marked():
    careful()
"""


def test_the_session_option_sweeps_the_tests_that_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_session=SESSION)
    result = pytester.runpytest("-p", "no:randomly", "--faultline-sweep=raise,disconnect")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "faultline: sweeping 1 of 2 tests (marked faultline_sweep) with raise, disconnect: *"
            "(N sites x 2 kinds + 1 runs per test); bound it with --faultline-budget=SECONDS *",
            "*faultline sweeps*",
            "test_session.py::test_opted_in: 1 sites, 2 of 2 single faults in *: no failure",
        ]
    )
    assert "test_not_marked:" not in result.stdout.str()


def test_the_session_option_sweeps_all_with_a_bound(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_session=SESSION)
    result = pytester.runpytest(
        "-p",
        "no:randomly",
        "--faultline-sweep=raise",
        "--faultline-sweep-all",
        "--faultline-budget=5",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "faultline: sweeping 2 of 2 tests (collected) with raise: *; --faultline-budget "
            "bounds each sweep to 5 s, the whole to 10 s",
            "test_session.py::test_opted_in: 1 sites, 1 of 1 single faults in *: no failure",
            "test_session.py::test_not_marked: 1 sites, 1 of 1 single faults in *: no failure",
        ]
    )


def test_a_bad_kind_on_the_command_line_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_session=SESSION)
    result = pytester.runpytest("--faultline-sweep=stal")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*pytest-faultline: --faultline-sweep unknown kind 'stal': must name fault kinds "
            "separated by commas, among raise, disconnect, stall, truncate, reset, short_read, "
            "reply_lost, preempt, preempt_step; "
            "got 'stal'"
        ]
    )


def test_the_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.faultline_sweep(**params): opt this test in*"])


def test_with_xdist_the_swept_tests_spread_over_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_session=SESSION)
    result = pytester.runpytest(
        "-p", "no:randomly", "-n", "2", "--faultline-sweep=raise", "--faultline-sweep-all"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "test_session.py::test_opted_in: 1 sites, 1 of 1 single faults in *: no failure",
            "test_session.py::test_not_marked: 1 sites, 1 of 1 single faults in *: no failure",
        ]
    )
