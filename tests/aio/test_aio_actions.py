"""Actions armed on coroutine functions act when awaited, inside them, without blocking the loop."""

from __future__ import annotations

import asyncio

import pytest
from aio_apps import Store

from pytest_faultline import Faultline, FaultlineError
from pytest_faultline.actions import Cancel, Delay, Preempt, Stall

LOAD = "aio_apps:Store.load"
SAVE = "aio_apps:Store.save"


def ticking_while(faultline: Faultline, step: float, work: object) -> list[float]:
    """The times at which a 50 ms ticker ticked while ``work`` (a coroutine function) ran."""
    ticks: list[float] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def ticker() -> None:
            while True:
                await asyncio.sleep(step)
                ticks.append(round(loop.time() - start, 6))

        task = asyncio.create_task(ticker())
        await work()  # type: ignore[operator]
        task.cancel()

    faultline.explore(body, runs=1)
    return ticks


def test_delay_sleeps_in_loop_time_and_the_ticker_ticks(faultline: Faultline) -> None:
    store = Store()
    faultline.arm(LOAD, Delay(0.5))

    async def work() -> None:
        assert await store.load("k") == "K"

    ticks = ticking_while(faultline, 0.05, work)
    assert ticks[:9] == [round(0.05 * i, 6) for i in range(1, 10)]
    assert faultline.hits(LOAD) == 1


def test_delay_does_not_block_a_plain_asyncio_loop(faultline: Faultline) -> None:
    """On asyncio's own loop (asyncio.run, real time) the ticker keeps ticking during a Delay."""
    store = Store()
    faultline.arm(LOAD, Delay(0.3))
    ticks: list[int] = []

    async def main() -> None:
        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.01)
                ticks.append(1)

        task = asyncio.create_task(ticker())
        await store.load("k")
        task.cancel()

    asyncio.run(main())
    assert len(ticks) >= 3  # a blocking Delay would let it tick at most once


def test_raise_happens_when_awaited_not_when_called(faultline: Faultline) -> None:
    store = Store()
    faultline.arm(LOAD, ConnectionResetError)

    async def body() -> None:
        pending = store.load("k")  # calling does not fire
        assert faultline.hits(LOAD) == 0
        with pytest.raises(ConnectionResetError, match=r"fault injected at 'aio_apps:Store\.load'"):
            await pending

    assert faultline.explore(body, runs=1).passed


def test_stall_awaits_release_while_other_tasks_run(faultline: Faultline) -> None:
    store = Store()
    arming = faultline.arm(LOAD, Stall())
    order: list[str] = []

    async def body() -> None:
        async def loader() -> None:
            order.append(await store.load("k"))

        task = asyncio.create_task(loader())
        assert await arming.wait_async(1)
        order.append("arrived")
        await asyncio.sleep(1)
        assert not task.done()
        arming.release()
        await task

    assert faultline.explore(body, runs=1).passed
    assert order == ["arrived", "K"]


def cancelled_save(naive: bool, store: Store) -> object:
    async def body() -> None:
        lock = asyncio.Lock()

        async def commit() -> None:
            if naive:
                await lock.acquire()
                await store.save("row")
                lock.release()
                return
            async with lock:
                await store.save("row")

        await asyncio.gather(commit(), return_exceptions=True)
        await asyncio.wait_for(lock.acquire(), timeout=1.0)

    return body


@pytest.mark.xfail(strict=True, raises=asyncio.TimeoutError)
def test_cancel_inside_the_call_leaves_the_naive_lock_held(faultline: Faultline) -> None:
    store = Store()
    faultline.arm(SAVE, Cancel(), times=1)
    faultline.explore(cancelled_save(naive=True, store=store), runs=1)  # type: ignore[arg-type]


def test_cancel_inside_the_call_fixed(faultline: Faultline) -> None:
    store = Store()
    faultline.arm(SAVE, Cancel(), times=1)
    assert faultline.explore(cancelled_save(naive=False, store=store), runs=1).passed  # type: ignore[arg-type]
    assert store.saved == []


def test_preempt_is_a_scheduling_point(faultline: Faultline) -> None:
    """Preempt armed on write: another task may run between the read and the write."""
    faultline.arm("aio_apps:Account.write", Preempt())
    from aio_apps import Account

    async def body() -> None:
        account = Account(100)
        results = await asyncio.gather(account.withdraw(80), account.withdraw(80))
        assert sorted(results) == [False, True]

    with pytest.raises(AssertionError):
        faultline.explore(body, runs=100)


def test_cancel_outside_a_task_is_an_error(faultline: Faultline) -> None:
    faultline.arm("aio_apps:Store.__init__", Cancel())
    with pytest.raises(FaultlineError, match="reached outside an asyncio task"):
        Store()
