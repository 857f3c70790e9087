"""The scheduler on unmodified standard-library code: every clean usage passes, in bounded time.

Each test explores up to ``RUNS`` schedules of real stdlib code (no stand-in of ours but the
patched primitives) and must pass without a false alarm.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import queue
import sqlite3
import sys
import threading
import time
from types import ModuleType

import pytest

from pytest_faultline.controller import Faultline

RUNS = 200


def fresh_import(name: str) -> ModuleType:
    """A new copy of module ``name``, executed now (inside the run), as a first import is."""
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_thread_pool_executor_first_imported_inside_a_run(faultline: Faultline) -> None:
    """``concurrent.futures.thread`` imported inside the run: its module-level lock is a managed
    one, and it registers ``_at_fork_reinit`` with ``os.register_at_fork``."""

    def body() -> None:
        futures_thread = fresh_import("concurrent.futures.thread")
        with futures_thread.ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(lambda x: x * x, range(5))) == [0, 1, 4, 9, 16]
        pool.shutdown(wait=True)

    result = faultline.explore(body, runs=30, stall_timeout=5)
    assert result.passed, result.report


def test_executor_map_and_shutdown(faultline: Faultline) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def body() -> None:
        total = [0]
        lock = threading.Lock()

        def add(x: int) -> int:
            with lock:
                total[0] += x
            return x

        pool = ThreadPoolExecutor(max_workers=3)
        assert sorted(pool.map(add, range(6))) == list(range(6))
        pool.shutdown(wait=True)
        assert total[0] == 15

    result = faultline.explore(body, runs=RUNS, stall_timeout=5, budget=60)
    assert result.passed, result.report


def test_queue_join_with_workers(faultline: Faultline) -> None:
    def body() -> None:
        q: queue.Queue[int | None] = queue.Queue()
        done: list[int] = []

        def worker() -> None:
            while True:
                item = q.get()
                try:
                    if item is None:
                        return
                    done.append(item)
                finally:
                    q.task_done()

        workers = [threading.Thread(target=worker) for _ in range(2)]
        for w in workers:
            w.start()
        for i in range(4):
            q.put(i)
        q.join()
        assert sorted(done) == [0, 1, 2, 3]
        for _ in workers:
            q.put(None)
        for w in workers:
            w.join()

    result = faultline.explore(body, runs=RUNS, stall_timeout=5, budget=60)
    assert result.passed, result.report


def test_logging_through_one_handler_in_lines_mode(faultline: Faultline) -> None:
    records: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = ListHandler()  # created before the runs: its lock is a real RLock
    log = logging.getLogger("faultline.reallibs.two_threads")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:

        def body() -> None:
            records.clear()

            def worker(n: int) -> None:
                for i in range(2):
                    log.info("worker %d line %d", n, i)

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(records) == 4

        result = faultline.explore(
            body, runs=40, preempt="lines", modules=["logging"], stall_timeout=5, budget=60
        )
        assert result.passed, result.report
    finally:
        log.removeHandler(handler)
    assert not handler.lock._is_owned()  # type: ignore[union-attr]


def test_threading_timer_fires_in_virtual_time(faultline: Faultline) -> None:
    def body() -> None:
        fired = threading.Event()
        start = time.monotonic()
        timer = threading.Timer(30.0, fired.set)
        timer.start()
        assert fired.wait(60)
        timer.join()
        assert time.monotonic() - start == pytest.approx(30.0)
        cancelled = threading.Timer(5.0, pytest.fail)
        cancelled.start()
        cancelled.cancel()
        cancelled.join()

    result = faultline.explore(body, runs=RUNS, stall_timeout=5, budget=60)
    assert result.passed, result.report


def test_sqlite3_shared_across_threads(faultline: Faultline) -> None:
    def body() -> None:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.execute("create table t (n integer)")
        lock = threading.Lock()

        def writer(n: int) -> None:
            with lock:
                db.execute("insert into t values (?)", (n,))
                db.commit()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert db.execute("select count(*) from t").fetchone() == (3,)
        db.close()

    result = faultline.explore(body, runs=RUNS, stall_timeout=5, budget=60)
    assert result.passed, result.report


@pytest.mark.skipif(sys.version_info < (3, 9), reason="asyncio.to_thread is 3.9+")
def test_asyncio_to_thread_inside_a_run(faultline: Faultline) -> None:
    def body() -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(asyncio.to_thread(pow, n, 2) for n in range(3))))

        assert asyncio.run(main()) == [0, 1, 4]

    result = faultline.explore(body, runs=20, stall_timeout=5, budget=60)
    assert result.passed, result.report
