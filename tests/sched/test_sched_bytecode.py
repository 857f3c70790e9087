"""``preempt="bytecode"``: races inside one line (``self.n += 1``) are found, the locked version
survives every schedule, and an exhaustive result says at which granularity it is exhaustive.

Each test runs through both ways of seeing bytecodes: ``sys.monitoring`` (3.12+) and
``sys.settrace`` with opcode events (the only way before 3.12; forced here on 3.12+ too)."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable

import pytest

from pytest_faultline import FaultlineError
from pytest_faultline.controller import Faultline
from pytest_faultline.sched import bytecode
from pytest_faultline.sched.bytecode import LOCAL_OPS, module_code, point_table

APP = "bytecode_app"  # the module whose bytecodes become scheduling points (beside this one)
Hits = importlib.import_module(APP).Hits


def two_bumps(method: str) -> Callable[[], None]:
    def body() -> None:
        hits = Hits()
        threads = [threading.Thread(target=getattr(hits, method)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert hits.n == 2, f"lost increment: n == {hits.n}"

    return body


@pytest.fixture(params=["monitoring", "settrace"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which interpreter hook delivers the bytecodes."""
    if request.param == "monitoring":
        if sys.version_info < (3, 12):
            pytest.skip("sys.monitoring needs Python 3.12+")
    else:
        monkeypatch.setattr(bytecode, "USE_MONITORING", False)
    return str(request.param)


def test_a_race_inside_one_line_is_found(faultline: Faultline, way: str) -> None:
    result = faultline.explore(
        two_bumps("bump"), runs=200, preempt="bytecode", modules=[APP], raises=False
    )
    assert isinstance(result.failure, AssertionError)
    assert "lost increment: n == 1" in str(result.failure)
    assert result.reproducible
    assert result.token is not None
    assert result.preemptions == 1
    # the swimlane names the bytecodes between which the switch happened
    assert "STORE_ATTR n" in result.report
    assert "LOAD_ATTR n" in result.report
    # and the token replays it, with the options the report tells
    assert f"preempt='bytecode', modules=['{APP}']" in result.report
    again = faultline.explore(
        two_bumps("bump"), token=result.token, preempt="bytecode", modules=[APP], raises=False
    )
    assert isinstance(again.failure, AssertionError)


def test_the_locked_increment_survives_every_schedule(faultline: Faultline, way: str) -> None:
    result = faultline.explore(
        two_bumps("locked_bump"),
        strategy="dfs",
        max_preemptions=2,
        runs=10_000,
        preempt="bytecode",
        modules=[APP],
    )
    assert result.passed
    assert result.exhausted
    assert result.summary() == (
        f"explored all {result.schedules} schedules (dfs): no failure, "
        "exhaustive at bytecode granularity in the named modules"
    )


def test_lines_cannot_see_it_and_say_so(faultline: Faultline, way: str) -> None:
    """The same race under line preemption: every schedule passes, and the result says that
    this is exhaustive only at line granularity (not a proof for races inside a line)."""
    result = faultline.explore(
        two_bumps("bump"),
        strategy="dfs",
        max_preemptions=2,
        runs=10_000,
        preempt="lines",
        modules=[APP],
    )
    assert result.passed
    assert result.exhausted
    assert result.summary().endswith(
        "no failure, exhaustive at line granularity (no switch inside a line)"
    )


@pytest.mark.faultline("thread_preemption", preempt="bytecode", modules=[APP], runs=200)
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="n += 1 is not atomic")
def test_the_scenario_finds_it() -> None:
    two_bumps("bump")()


@pytest.mark.faultline("thread_preemption", preempt="bytecode", modules=[APP], runs=200)
def test_the_scenario_passes_the_locked_version() -> None:
    two_bumps("locked_bump")()


def test_local_bytecodes_are_not_points() -> None:
    """Loads and stores of locals, constants and stack shuffles commute with other threads:
    only bytecodes that touch shared state are points."""
    code = Hits.bump.__code__
    table = point_table(code)
    ops = sorted(op.split()[0] for op, _ in table.values())
    assert "STORE_ATTR" in ops
    assert "LOAD_ATTR" in ops
    assert not set(ops) & LOCAL_OPS
    assert all(site == f"bytecode_app.py:{code.co_firstlineno + 1}" for _, site in table.values())
    assert point_table(code) is table  # computed once per process


def test_module_code_reaches_methods_and_nested_functions() -> None:
    codes = {code.co_name for code in module_code([APP, __name__])}
    assert {"__init__", "bump", "locked_bump", "two_bumps", "body", "way"} <= codes


def test_bytecode_needs_modules(faultline: Faultline) -> None:
    with pytest.raises(FaultlineError) as info:
        faultline.explore(lambda: None, preempt="bytecode")
    assert str(info.value) == (
        "explore(): preempt='bytecode' needs modules=['pkg.mod', ...]: the modules whose every "
        "shared-state bytecode becomes a scheduling point (tracing every module would be far "
        "too slow)"
    )


def test_an_unknown_preempt_mode_lists_every_mode(faultline: Faultline) -> None:
    with pytest.raises(FaultlineError) as info:
        faultline.explore(lambda: None, preempt="opcodes")
    assert str(info.value) == (
        "explore(): preempt must be 'sync' (switch at synchronisation operations), 'lines' "
        "(also at every line of modules=[...]), 'bytecode' (also between the bytecodes of "
        "modules=[...]) or 'awaits' (asyncio: also at every await of modules=[...]), "
        "got 'opcodes'"
    )


def test_only_the_code_that_runs_is_analysed(faultline: Faultline, way: str) -> None:
    """The point tables are made when a code object first runs, not for the whole module
    before the first run."""
    result = faultline.explore(
        two_bumps("bump"), runs=200, preempt="bytecode", modules=[APP], raises=False
    )
    assert isinstance(result.failure, AssertionError)
    assert Hits.bump.__code__ in bytecode._TABLES
    never_run = importlib.import_module(APP).never_run
    assert never_run.__code__ not in bytecode._TABLES
