"""End to end: the ``task_interleaving`` scenario in a real pytest run, alone and under
pytest-asyncio; explore/replay of coroutine functions; bad parameters."""

from __future__ import annotations

import re

import pytest

from pytest_faultline import Faultline, FaultlineError

SESSIONS = """
import asyncio
import pytest

class Sessions:
    def __init__(self):
        self.by_id = {}

    async def reconnect(self, client, fixed):
        if fixed:
            self.by_id[client] = "new"
            return
        old = self.by_id.get(client)
        await asyncio.sleep(0)          # look the old session up in storage
        self.by_id[client] = (old or "") + "new"

async def scenario(fixed):
    sessions = Sessions()
    await asyncio.gather(sessions.reconnect(1, fixed), sessions.reconnect(1, fixed))
    assert sessions.by_id[1] == "new"
"""

PLAIN = (
    SESSIONS
    + """
@pytest.mark.faultline("task_interleaving", runs=100)
async def test_naive():
    await scenario(fixed=False)

@pytest.mark.faultline("task_interleaving", runs=100)
async def test_fixed():
    await scenario(fixed=True)
"""
)

WITH_PYTEST_ASYNCIO = (
    SESSIONS
    + """
import pytest_asyncio
from pytest_faultline.aio import ControlledLoop

@pytest_asyncio.fixture
async def ready():
    await asyncio.sleep(5)  # loop time: virtual on faultline's loop
    return asyncio.Event()

@pytest.mark.asyncio
@pytest.mark.faultline("task_interleaving", runs=100)
async def test_naive(ready):
    assert isinstance(asyncio.get_running_loop(), ControlledLoop)
    await scenario(fixed=False)

@pytest.mark.asyncio
@pytest.mark.faultline("task_interleaving", runs=100)
async def test_fixed(ready):
    assert isinstance(asyncio.get_running_loop(), ControlledLoop)
    await scenario(fixed=True)

@pytest.mark.asyncio
async def test_other_asyncio_tests_keep_asyncio_loop():
    assert not isinstance(asyncio.get_running_loop(), ControlledLoop)
"""
)


def test_scenario_on_an_async_def_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sessions=PLAIN)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:asyncio")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*faultline: schedule * (of up to 100, pct, depth 3, preempt=sync) failed*",
            "*replay: pytest test_sessions.py::test_naive --faultline-replay=fl1.*",
            "*step | T0 (main)*",
        ]
    )
    token = re.search(r"--faultline-replay=(fl1\.\S+)", result.stdout.str())
    assert token is not None
    replayed = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:asyncio", f"--faultline-replay={token[1]}", "-k", "naive"
    )
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*the schedule replayed from its token failed*"])


def test_scenario_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sessions=WITH_PYTEST_ASYNCIO)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*test_naive*", "*preempt=sync) failed*"])


def test_pytest_start_does_not_load_the_controlled_loop(pytester: pytest.Pytester) -> None:
    """The pytest-asyncio integration is registered when pytest starts; the controlled loop (and
    the rest of the asyncio package) loads when a test first explores task orders."""
    pytester.makepyfile(
        test_plain="""
        import sys
        import pytest

        @pytest.mark.asyncio
        async def test_an_asyncio_test_that_does_not_explore(request):
            assert request.config.pluginmanager.has_plugin("faultline-asyncio")
            assert "pytest_faultline.aio.loop" not in sys.modules
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_scenario_on_a_sync_test_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sync="""
import pytest

@pytest.mark.faultline("task_interleaving")
def test_sync():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*did not run on faultline's event loop*async def*"])


def test_scenario_rejects_preempt_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.faultline("task_interleaving", preempt="lines", modules=["json"])
async def test_bad():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*parameter 'preempt' must be one of 'sync', 'awaits', got 'lines'*"]
    )


def test_explore_preempt_awaits_needs_modules(faultline: Faultline) -> None:
    async def body() -> None:
        pass

    with pytest.raises(FaultlineError, match=r"preempt='awaits' needs modules=\['pkg.mod'"):
        faultline.explore(body, preempt="awaits")


def test_thread_explore_rejects_preempt_awaits(faultline: Faultline) -> None:
    with pytest.raises(FaultlineError, match="pass a coroutine function"):
        faultline.explore(lambda: None, preempt="awaits", modules=["json"])


def test_replay_is_exact_100_of_100(faultline: Faultline) -> None:
    import asyncio

    async def body() -> None:
        state = {"n": 0}

        async def bump() -> None:
            seen = state["n"]
            await asyncio.sleep(0)
            state["n"] = seen + 1

        await asyncio.gather(bump(), bump(), bump())
        assert state["n"] == 3

    found = faultline.explore(body, runs=200, raises=False)
    assert found.failure is not None
    assert found.token is not None
    steps = [(s.thread, s.site) for s in found.steps]
    for _ in range(100):
        again = faultline.replay(body, found.token, raises=False)
        assert type(again.failure) is AssertionError
        assert [(s.thread, s.site) for s in again.steps] == steps
