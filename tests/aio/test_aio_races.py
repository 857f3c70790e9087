"""The classic asyncio races, found by exploring task orders; each fix survives the same search."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aio_apps import Account, FrameReader, read_frame, slow_frames

from pytest_faultline import DeadlockError, Faultline

Body = Callable[[], Coroutine[Any, Any, None]]
RUNS = 200


def check_then_act(naive: bool) -> Body:
    """Two tasks fill a cache entry: both see it missing across the await of the fetch."""

    async def body() -> None:
        cache: dict[str, str] = {}
        fetches: list[str] = []
        lock = asyncio.Lock()

        async def fetch(key: str) -> str:
            fetches.append(key)
            await asyncio.sleep(0.01)
            return key.upper()

        async def get(key: str) -> str:
            if naive:
                if key not in cache:
                    cache[key] = await fetch(key)
                return cache[key]
            async with lock:
                if key not in cache:
                    cache[key] = await fetch(key)
                return cache[key]

        await asyncio.gather(get("a"), get("a"))
        assert fetches == ["a"], f"fetched {len(fetches)} times"

    return body


def lost_update(naive: bool) -> Body:
    """Read, await, write back: the other task's increment is lost."""

    async def body() -> None:
        state = {"hits": 0}
        lock = asyncio.Lock()

        async def hit() -> None:
            if naive:
                seen = state["hits"]
                await asyncio.sleep(0)
                state["hits"] = seen + 1
                return
            async with lock:
                seen = state["hits"]
                await asyncio.sleep(0)
                state["hits"] = seen + 1

        await asyncio.gather(hit(), hit(), hit())
        assert state["hits"] == 3

    return body


def abba(naive: bool) -> Body:
    """Two tasks take two asyncio.Locks in opposite orders."""

    async def body() -> None:
        accounts, audit = asyncio.Lock(), asyncio.Lock()

        async def transfer() -> None:
            async with accounts, audit:
                pass

        async def report() -> None:
            first, second = (audit, accounts) if naive else (accounts, audit)
            async with first, second:
                pass

        await asyncio.gather(transfer(), report())

    return body


def lost_wakeup(naive: bool) -> Body:
    """The consumer checks, awaits a log write, then clears the event: a set in between is
    lost and the consumer waits for ever."""

    async def body() -> None:
        items: list[int] = []
        ready = asyncio.Event()

        async def log(message: str) -> None:
            await asyncio.sleep(0)

        async def consume() -> int:
            if naive:
                if not items:
                    await log("waiting")
                    ready.clear()
                    await ready.wait()
                return items.pop()
            while not items:
                ready.clear()
                if not items:
                    await ready.wait()
            return items.pop()

        async def produce() -> None:
            items.append(1)
            ready.set()

        got, _ = await asyncio.gather(consume(), produce())
        assert got == 1

    return body


def cancelled_between_awaits(naive: bool) -> Body:
    """A task cancelled between acquire() and release() leaves the lock held."""

    async def body() -> None:
        lock = asyncio.Lock()
        journal: list[str] = []

        async def flush() -> None:
            await asyncio.sleep(0)

        async def worker() -> None:
            if naive:
                await lock.acquire()
                journal.append("begin")
                await flush()
                journal.append("end")
                lock.release()
                return
            async with lock:
                journal.append("begin")
                await flush()
                journal.append("end")

        task = asyncio.create_task(worker())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(lock.acquire(), timeout=1.0)  # loop time: no real second
        lock.release()

    return body


def timeout_mid_message(naive: bool) -> Body:
    """wait_for times out between a frame's header and payload; retrying on the same stream
    reads payload bytes as the next header."""

    async def body() -> None:
        server = await asyncio.start_server(slow_frames, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frames = FrameReader(reader)

        async def read() -> bytes:
            return await (read_frame(reader) if naive else frames.read_frame())

        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(read(), timeout=1.0)
            # the naive retry reads payload bytes as a length and waits for ever: a timeout
            assert await asyncio.wait_for(read(), timeout=5.0) == b"payload-1"
        finally:
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

    return body


def no_suspension(naive: bool) -> Body:
    """Two withdrawals whose race window spans only awaits that never suspend."""

    async def body() -> None:
        account = Account(100)
        withdraw = account.withdraw if naive else account.withdraw_fixed
        results = await asyncio.gather(withdraw(80), withdraw(80))
        assert sorted(results) == [False, True]
        assert account.balance == 20

    return body


AWAITS = {"preempt": "awaits", "modules": ["aio_apps"]}


@pytest.mark.xfail(strict=True, raises=AssertionError)
def test_check_then_act_naive(faultline: Faultline) -> None:
    faultline.explore(check_then_act(naive=True), runs=RUNS)


def test_check_then_act_fixed(faultline: Faultline) -> None:
    assert faultline.explore(check_then_act(naive=False), runs=RUNS).passed


@pytest.mark.xfail(strict=True, raises=AssertionError)
def test_lost_update_naive(faultline: Faultline) -> None:
    faultline.explore(lost_update(naive=True), runs=RUNS)


def test_lost_update_fixed(faultline: Faultline) -> None:
    assert faultline.explore(lost_update(naive=False), runs=RUNS).passed


def test_abba_is_a_cycle(faultline: Faultline) -> None:
    with pytest.raises(DeadlockError) as caught:
        faultline.explore(abba(naive=True), runs=RUNS)
    text = str(caught.value)
    assert "wait-for cycle: T" in text
    assert "held by T" in text
    assert "stacks:" in text
    assert "in transfer" in text
    assert "in report" in text


def test_abba_fixed(faultline: Faultline) -> None:
    assert faultline.explore(abba(naive=False), runs=RUNS).passed


def test_lost_wakeup_naive(faultline: Faultline) -> None:
    with pytest.raises(DeadlockError, match="lost wakeup: T1 waits on Event"):
        faultline.explore(lost_wakeup(naive=True), runs=RUNS)


def test_lost_wakeup_fixed(faultline: Faultline) -> None:
    assert faultline.explore(lost_wakeup(naive=False), runs=RUNS).passed


@pytest.mark.xfail(strict=True, raises=asyncio.TimeoutError)
def test_cancelled_between_awaits_naive(faultline: Faultline) -> None:
    faultline.explore(cancelled_between_awaits(naive=True), runs=RUNS)


def test_cancelled_between_awaits_fixed(faultline: Faultline) -> None:
    assert faultline.explore(cancelled_between_awaits(naive=False), runs=RUNS).passed


@pytest.mark.xfail(strict=True, raises=asyncio.TimeoutError)
def test_timeout_mid_message_naive(faultline: Faultline) -> None:
    faultline.explore(timeout_mid_message(naive=True), runs=5)


def test_timeout_mid_message_fixed(faultline: Faultline) -> None:
    assert faultline.explore(timeout_mid_message(naive=False), runs=5).passed


def test_no_suspension_race_is_latent_without_await_points(faultline: Faultline) -> None:
    """Plain asyncio (and reordering only runnable tasks) never opens this window."""
    exploration = faultline.explore(no_suspension(naive=True), runs=RUNS)
    assert exploration.passed
    assert exploration.schedules == RUNS


@pytest.mark.xfail(strict=True, raises=AssertionError)
def test_no_suspension_race_naive(faultline: Faultline) -> None:
    faultline.explore(no_suspension(naive=True), runs=RUNS, **AWAITS)


def test_no_suspension_race_fixed(faultline: Faultline) -> None:
    assert faultline.explore(no_suspension(naive=False), runs=RUNS, **AWAITS).passed
