"""Loop time on the controlled loop: virtual, jumping to the next timer, following the clock."""

from __future__ import annotations

import asyncio

import pytest

from pytest_faultline import Faultline


def test_an_hour_of_sleep_is_a_jump(faultline: Faultline) -> None:
    seen: list[float] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        seen.append(loop.time() - start)

    assert faultline.explore(body, runs=2).passed
    assert seen == [pytest.approx(3600.0)] * len(seen)
    assert seen


def test_wait_for_times_out_at_its_deadline(faultline: Faultline) -> None:
    seen: list[float] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), timeout=5.0)
        seen.append(loop.time() - start)

    assert faultline.explore(body, runs=3).passed
    assert seen
    assert seen == [pytest.approx(5.0)] * len(seen)


def test_ticker_and_timers_interleave_in_order(faultline: Faultline) -> None:
    ticks: list[float] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.05)
                ticks.append(round(loop.time() - start, 6))

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.5 + 0.01)
        task.cancel()

    assert faultline.explore(body, runs=1).passed
    assert ticks == [round(0.05 * i, 6) for i in range(1, 11)]


def test_clock_advance_fires_loop_timers(faultline: Faultline) -> None:
    clock = faultline.clock
    fired: list[str] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(30, fired.append, "after 30 s")
        await asyncio.sleep(0)
        assert fired == []
        clock.advance(60)
        await asyncio.sleep(0)
        assert fired == ["after 30 s"]

    assert faultline.explore(body, runs=1).passed
    assert fired == ["after 30 s"]


def test_loop_time_follows_the_clock(faultline: Faultline) -> None:
    clock = faultline.clock

    async def body() -> None:
        loop = asyncio.get_running_loop()
        assert loop.time() == pytest.approx(clock.monotonic())
        await asyncio.sleep(10)
        assert loop.time() == pytest.approx(clock.monotonic())

    assert faultline.explore(body, runs=1).passed


@pytest.mark.faultline("clock_jump", at="aio_apps:Store.save", seconds=120)
def test_clock_jump_on_async_code_fires_the_timeout(faultline: Faultline) -> None:
    """A clock jump inside an awaited call: the loop's 60 s timeout fires, in order."""
    from aio_apps import Store

    async def body() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        expired = loop.create_future()
        loop.call_later(60, expired.set_result, "expired")
        await Store().save("row")
        assert loop.time() - start >= 120
        assert await asyncio.wait_for(expired, timeout=1) == "expired"

    assert faultline.explore(body, runs=2).passed
