"""The incident's reconnect bug, caught three ways; the fixed server survives each."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

from pytest_faultline.actions import Delay


async def reconnect_with_the_same_id(implementation: ModuleType) -> None:
    """alice connects, drops, and comes straight back with the same id."""
    server = implementation.SessionServer()
    old = await server.open("alice")
    await server.disconnect(old)
    await asyncio.sleep(0)  # the reconnect arrives: plain asyncio runs the cleanup first
    new = await server.open("alice")
    await server.settle()
    assert server.sessions.get("alice") is new, "the reconnected client lost its session"


def test_without_faults_both_servers_keep_the_session(any_implementation):
    """Plain asyncio never runs the reconnect before the cleanup task: the bug is latent."""
    asyncio.run(reconnect_with_the_same_id(any_implementation))


@pytest.mark.buggy_fails(raises=AssertionError)
@pytest.mark.faultline("task_interleaving", runs=200)
async def test_reconnect_in_every_task_order(implementation):
    """Task interleaving alone: some order runs the reconnect before the cleanup task."""
    await reconnect_with_the_same_id(implementation)


@pytest.mark.buggy_fails(raises=AssertionError)
def test_cleanup_delayed_past_the_reconnect(implementation, faultline):
    """delayed_cleanup: the cleanup task waits until the reconnect's open() has returned (on
    plain asyncio.run: this fault needs no controlled loop)."""
    module = implementation.__name__
    faultline.defer(f"{module}:SessionServer.cleanup", until=f"{module}:SessionServer.open")
    asyncio.run(reconnect_with_the_same_id(implementation))


@pytest.mark.buggy_fails(raises=AssertionError)
def test_disconnect_through_the_proxy(implementation, faultline):
    """A real drop on loopback through the proxy, the cleanup a second late (an async Delay,
    in loop time), the client back at once: its PING must find its session."""
    faultline.arm(f"{implementation.__name__}:SessionServer.cleanup", Delay(1.0))

    async def body() -> None:
        server = implementation.SessionServer()
        listener = await server.listen()
        proxy = faultline.proxy(listener.sockets[0].getsockname()[:2])
        first = await implementation.Client.connect(proxy.listen, "alice")
        assert await first.ping() == f"PONG {first.session}"
        proxy.reset_connections()
        await first.wait_dropped()
        await first.close()
        second = await implementation.Client.connect(proxy.listen, "alice")
        await asyncio.sleep(2)  # loop time: the late cleanup has run by now
        try:
            assert await second.ping() == f"PONG {second.session}"
        finally:
            await second.close()
            listener.close()
            await listener.wait_closed()

    faultline.explore(body, runs=1)
