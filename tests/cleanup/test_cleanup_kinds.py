"""Each kind of asynchronous cleanup, held and released on the thread that would have run it."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator

import cleanup_apps
import pytest
from cleanup_apps import ran_log

from pytest_faultline.controller import Faultline

BOUND_S = 5.0
MAIN = threading.main_thread().name


@pytest.fixture(autouse=True)
def _clear_events() -> Iterator[None]:
    ran_log.clear()
    yield
    ran_log.clear()


# -- threading.Timer ------------------------------------------------------------------------------


def test_timer_callback_waits_on_its_timer_thread(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.expire_session)
    timer = threading.Timer(0, cleanup_apps.expire_session, args=("A",))
    timer.start()
    assert deferral.wait(1, timeout=BOUND_S)
    assert ran_log == []
    assert timer.is_alive()  # parked at the call: the timer is late
    (call,) = deferral.release()
    assert ran_log == [("expired A", timer.name)]
    assert call.thread == call.ran_on == timer.name
    timer.join(BOUND_S)
    assert not timer.is_alive()


def test_timer_and_held_call_fall_due_in_order_on_advance(faultline: Faultline) -> None:
    """A held call released after 30 s of clock time, between two clock-driven timers."""
    clock = faultline.clock
    deferral = faultline.defer(cleanup_apps.expire_session, seconds=30)
    worker = threading.Thread(target=cleanup_apps.expire_session, args=("held",), name="worker")
    worker.start()
    assert deferral.wait(1, timeout=BOUND_S)
    threading.Timer(20, cleanup_apps.on_closed, args=("at 20",)).start()
    threading.Timer(40, cleanup_apps.on_closed, args=("at 40",)).start()
    clock.advance(29)
    assert [what for what, _ in ran_log] == ["closed at 20"]
    clock.advance(20)
    assert [what for what, _ in ran_log] == ["closed at 20", "expired held", "closed at 40"]
    (call,) = deferral.released
    assert call.ran_on == "worker"
    assert call.trigger == "30s of clock time passed"
    worker.join(BOUND_S)


def test_held_call_is_not_released_before_its_seconds(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.expire_session, seconds=5)
    cleanup_apps.expire_session("A")  # on the test's thread: held, returns at once
    faultline.clock.advance(4.5)
    assert ran_log == []
    assert len(deferral.pending) == 1
    faultline.clock.advance(0.5)
    assert ran_log == [("expired A", MAIN)]


# -- weakref.finalize -----------------------------------------------------------------------------


def test_finalizer_is_held_until_release(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.release_buffer)
    buffer = cleanup_apps.Buffer(7)
    finalizer = buffer.finalizer
    del buffer
    gc.collect()
    assert not finalizer.alive  # the finalizer was called ...
    assert ran_log == []  # ... but its cleanup is held
    (call,) = deferral.release()
    assert ran_log == [("released 7", MAIN)]
    assert call.mode == "inline"


def test_finalizer_on_a_worker_does_not_park_the_worker(faultline: Faultline) -> None:
    """A finalizer runs wherever the last reference dies; parking there could block any code,
    so its call returns at once and runs later on the releasing thread."""
    deferral = faultline.defer(cleanup_apps.release_buffer)
    holder = [cleanup_apps.Buffer(8)]
    worker = threading.Thread(target=holder.clear, name="dropper")
    worker.start()
    worker.join(BOUND_S)
    assert not worker.is_alive()
    (call,) = deferral.pending
    assert call.thread == "dropper"
    assert call.mode == "inline"
    deferral.release()
    assert ran_log == [("released 8", MAIN)]


# -- asyncio under asyncio.run --------------------------------------------------------------------


def test_call_soon_and_call_later_are_held_and_reposted_to_the_loop(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.on_closed, until=cleanup_apps.reopen)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(cleanup_apps.on_closed, "soon")
        loop.call_later(0.001, cleanup_apps.on_closed, "later")
        await asyncio.sleep(0.01)  # wakes after the call_later: both callbacks were reached
        assert len(deferral.pending) == 2
        assert ran_log == []
        await cleanup_apps.reopen("A")  # until: releases when it returns
        assert [what for what, _ in ran_log] == ["reopened A", "closed soon", "closed later"]

    asyncio.run(main())
    assert [c.mode for c in deferral.released] == ["loop", "loop"]
    assert {thread for _, thread in ran_log} == {MAIN}


def test_future_done_callback_is_held(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.on_done)

    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(cleanup_apps.on_done)
        future.set_result(42)
        await asyncio.sleep(0)
        assert deferral.pending
        assert ran_log == []
        deferral.release()
        assert ran_log == [("done 42", MAIN)]

    asyncio.run(main())


def test_loop_callback_runs_on_the_loop_thread_when_released_from_another(
    faultline: Faultline,
) -> None:
    """A loop in a background thread: release() on the test's thread posts the held callback
    back to the loop, which runs it on its own thread; release() waits for it."""
    deferral = faultline.defer(cleanup_apps.on_closed)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="loop-thread")
    thread.start()
    try:
        loop.call_soon_threadsafe(cleanup_apps.on_closed, "remote")
        assert deferral.wait(1, timeout=BOUND_S)
        assert ran_log == []
        (call,) = deferral.release()
        assert ran_log == [("closed remote", "loop-thread")]
        assert call.thread == call.ran_on == "loop-thread"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(BOUND_S)
        loop.close()


def test_coroutine_task_completes_only_after_release(faultline: Faultline) -> None:
    deferral = faultline.defer(cleanup_apps.close_session, until="cleanup_apps:reopen")

    async def main() -> str:
        task = asyncio.create_task(cleanup_apps.close_session("A"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # the task waits for release without blocking the loop
        assert ran_log == []
        await cleanup_apps.reopen("A")
        return await asyncio.wait_for(task, BOUND_S)

    assert asyncio.run(main()) == "A closed"  # the real result, after the release
    assert [what for what, _ in ran_log] == ["reopened A", "closing A"]
    (call,) = deferral.released
    assert call.mode == "coroutine"
    assert call.result == "A closed"


# -- asyncio under pytest-asyncio -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_pytest_asyncio_callback_and_task_are_held(faultline: Faultline) -> None:
    callbacks = faultline.defer(cleanup_apps.on_closed)
    tasks = faultline.defer(cleanup_apps.close_session, until=cleanup_apps.reopen)
    loop = asyncio.get_running_loop()
    loop.call_soon(cleanup_apps.on_closed, "soon")
    task = asyncio.create_task(cleanup_apps.close_session("B"))
    await asyncio.sleep(0.01)
    assert ran_log == []
    assert not task.done()
    await cleanup_apps.reopen("B")
    assert await asyncio.wait_for(task, BOUND_S) == "B closed"
    callbacks.release()
    assert [what for what, _ in ran_log] == ["reopened B", "closing B", "closed soon"]
    assert tasks.released[0].mode == "coroutine"


@pytest.mark.asyncio
@pytest.mark.faultline(
    "delayed_cleanup", target="cleanup_apps:close_session", until="cleanup_apps:reopen"
)
async def test_pytest_asyncio_with_the_marker(faultline: Faultline) -> None:
    task = asyncio.create_task(cleanup_apps.close_session("C"))
    await asyncio.sleep(0)
    assert not task.done()
    await cleanup_apps.reopen("C")
    assert await asyncio.wait_for(task, BOUND_S) == "C closed"
