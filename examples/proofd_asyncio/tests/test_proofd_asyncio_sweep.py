"""The sweep finds the reconnect bug without being told where: no task order, no target.

With ``kinds=["preempt", "preempt_step"]`` the sweep runs the body once on a controlled event
loop in asyncio's own order (the dropped session's cleanup task first: the bug stays latent),
records every place where another task could run instead of the one asyncio would run next,
and re-runs the body once per place and kind with the other task run there. The buggy server's
cleanup, run after the reconnect, removes the new session; the fixed server's removes only the
session it was started for.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
from proofd_asyncio import buggy

KINDS = ["preempt", "preempt_step"]  # the incident: a task order the daemon did not expect


async def reconnect_with_the_same_id(implementation: ModuleType) -> None:
    """alice connects, drops, and comes straight back with the same id."""
    server = implementation.SessionServer()
    old = await server.open("alice")
    await server.disconnect(old)
    await asyncio.sleep(0)  # the reconnect arrives: plain asyncio runs the cleanup first
    new = await server.open("alice")
    await server.settle()
    assert server.sessions.get("alice") is new, "the reconnected client lost its session"


@pytest.mark.faultline("fault_sweep", kinds=KINDS)
@pytest.mark.buggy_fails(raises=AssertionError)
async def test_another_task_first_anywhere_keeps_the_session(implementation):
    await reconnect_with_the_same_id(implementation)


def test_the_sweep_finds_the_cleanup_after_the_reconnect(faultline):
    async def body() -> None:
        await reconnect_with_the_same_id(buggy)

    found = faultline.sweep(body, kinds=KINDS, raises=False)
    assert found.complete
    assert found.failures, found.report()
    for run in found.failures:
        assert "the reconnected client lost its session" in run.error_text()
        assert run.reproducible, found.report()
    # The switch that breaks it: the body goes on where asyncio would run the cleanup task.
    (site,) = found.failures[0].sites
    assert site.op == "T1 (SessionServer.cleanup)", found.report()
