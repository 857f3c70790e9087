"""The sweep at fault points and wrapped calls: it finds the half-done transfer without being
told where, the careful code survives every site, pairs find what only two faults break, and
every failing run replays from its own token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from pytest_faultline import InjectedFault, _points, point
from pytest_faultline.controller import Faultline
from pytest_faultline.decider import ReplayToken
from pytest_faultline.errors import FaultlineError
from pytest_faultline.net import _socket_patches, relay

from .sweep_apps import Store, job_with_one_retry, transfer


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=7, nodeid="tests/sweep/test_x.py::test_x")
    yield controller
    controller.close()


def conserved(careful: bool) -> None:
    accounts = {"a": 100, "b": 0}
    with contextlib.suppress(InjectedFault):  # a failed transfer is fine if no money is lost
        transfer(accounts, 30, careful=careful)
    assert sum(accounts.values()) == 100, f"money was lost: {accounts}"


def test_the_sweep_finds_the_half_done_transfer(fl: Faultline) -> None:
    found = fl.sweep(lambda: conserved(careful=False), kinds=["raise"], raises=False)
    assert [s.describe() for s in found.sites] == ["point bank.debit #1", "point bank.credit #1"]
    assert [(r.sites[0].describe(), r.outcome) for r in found.runs] == [
        ("point bank.debit #1", "pass"),
        ("point bank.credit #1", "fail"),
    ]
    (failure,) = found.failures
    assert isinstance(failure.failure, AssertionError)
    assert failure.reproducible
    assert found.complete
    report = found.report()
    assert "point bank.credit #1" in report
    assert "FAIL raise at point bank.credit #1" in report
    assert "--faultline-replay=" + failure.token in report


def test_careful_code_survives_every_site(fl: Faultline) -> None:
    found = fl.sweep(lambda: conserved(careful=True), kinds=["raise", "disconnect"])
    assert found.passed
    assert [r.outcome for r in found.runs] == ["pass"] * 4  # 2 sites x 2 kinds
    assert "no failure" in found.summary()


def test_an_exception_class_is_a_kind_of_its_own(fl: Faultline) -> None:
    found = fl.sweep(lambda: conserved(careful=True), kinds=[KeyError], raises=False)
    assert found.kinds == ("raise:KeyError",)
    # The careful code puts the money back for InjectedFault only: a KeyError escapes it.
    assert [type(r.failure).__name__ for r in found.runs] == ["KeyError", "KeyError"]


def test_a_failure_is_raised_with_the_report_and_the_runs_token(fl: Faultline) -> None:
    with pytest.raises(AssertionError, match="money was lost") as caught:
        fl.sweep(lambda: conserved(careful=False), kinds=["raise"])
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "faultline sweep: 2 sites, 2 of 2 single faults" in notes
    assert "1 failed" in notes
    found = caught.value.faultline_sweep  # type: ignore[attr-defined]
    assert fl.token() == found.failures[0].token  # the test's report shows the failing run


def test_a_token_replays_exactly_its_one_fault() -> None:
    first = Faultline(seed=7, nodeid="t")
    try:
        found = first.sweep(lambda: conserved(careful=False), kinds=["raise"], raises=False)
    finally:
        first.close()
    token = found.failures[0].token
    again = Faultline(seed=99, nodeid="t", token=ReplayToken.decode(token))
    try:
        with pytest.raises(AssertionError, match="money was lost"):
            again.sweep(lambda: conserved(careful=False), kinds=["raise"])
        assert [e.name for e in again.events if e.kind == "raise"] == ["point bank.credit #1"]
        assert again.token() == token
    finally:
        again.close()


def test_pairs_find_what_one_fault_cannot(fl: Faultline) -> None:
    store = Store()
    alone = fl.sweep(lambda: job_with_one_retry(Store()), kinds=["raise"])
    assert alone.passed
    assert not alone.pairs
    found = fl.sweep(lambda: job_with_one_retry(store), kinds=["raise"], pairs=True, raises=False)
    assert [r.outcome for r in found.singles] == ["pass", "pass"]
    assert found.pair_candidates == 1  # job.second comes after job.first and is still reached
    (pair,) = found.failures
    assert [s.describe() for s in pair.sites] == ["point job.first #1", "point job.second #1"]
    assert "pairs are tried only where both faults pass alone" in found.report()


def test_called_targets_are_sites(fl: Faultline) -> None:
    original = Store.__dict__["save"]

    def run() -> None:
        store = Store()
        job_with_one_retry(store)
        assert store.rows == ["first", "second"]

    found = fl.sweep(
        run, kinds=["raise"], targets=["tests.sweep.sweep_apps:Store.save"], raises=False
    )
    calls = [s for s in found.sites if s.where == "call"]
    assert [s.describe() for s in calls] == [
        "call tests.sweep.sweep_apps:Store.save #1",
        "call tests.sweep.sweep_apps:Store.save #2",
    ]
    # Every site's fault fired, and the job's retry survived each one.
    assert [r.outcome for r in found.runs] == ["pass"] * 4
    assert Store.__dict__["save"] is not original  # wrapped while the test runs ...
    fl.close()
    assert Store.__dict__["save"] is original  # ... and restored with the test's patches


def test_budget_and_max_runs_say_how_much_was_covered(fl: Faultline) -> None:
    found = fl.sweep(
        lambda: conserved(careful=True), kinds=["raise", "disconnect"], max_runs=3, raises=False
    )
    assert len(found.runs) == 3
    assert found.planned_singles == 4
    assert not found.complete
    assert found.notes == ["stopped by max_runs"]
    assert "coverage: 3 of 4 single faults run (75%)" in found.report()
    assert "incomplete" in found.summary()


def test_a_body_that_fails_alone_is_not_swept(fl: Faultline) -> None:
    def broken() -> None:
        point("p")
        raise ValueError("broken without faults")

    with pytest.raises(ValueError, match="broken without faults") as caught:
        fl.sweep(broken, kinds=["raise"])
    assert "failed in its recording run, without any fault" in "\n".join(caught.value.__notes__)


def test_observers_are_gone_after_a_sweep_even_a_failing_one(fl: Faultline) -> None:
    with pytest.raises(AssertionError):
        fl.sweep(lambda: conserved(careful=False), kinds=["raise"])
    assert point.__code__ is _points._PLAIN_CODE  # the disarmed path is one lookup again
    assert _points._observer is None
    assert _socket_patches._observer is None
    assert relay._observer is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"kinds": ["stal"]},
            "sweep(): unknown fault kind 'stal' (did you mean 'stall'?); kinds are names among",
        ),
        ({"kinds": []}, "sweep(): kinds must be a non-empty list"),
        ({"kinds": ["reset", "reset"]}, "sweep(): fault kind 'reset' is given twice"),
        ({"budget": 0}, "sweep(): budget must be seconds > 0 or None, got 0"),
        ({"max_runs": 0}, "sweep(): max_runs must be a whole number >= 1 or None, got 0"),
        (
            {"targets": ["nocolon"]},
            "sweep(): targets must be a list of callables named 'pkg.mod:Qual.name'",
        ),
        ({"pairs": "yes"}, "sweep(): pairs must be True or False, got 'yes'"),
    ],
)
def test_bad_options_say_what_to_fix(fl: Faultline, given: dict[str, object], message: str) -> None:
    with pytest.raises(FaultlineError) as caught:
        fl.sweep(lambda: None, **given)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
