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
