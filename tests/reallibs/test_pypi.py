"""The scheduler on unmodified PyPI libraries that use threads or shared state.

Clean usage passes under up to ``RUNS`` schedules with no false alarm. Where a race was found,
a strict xfail shows it (and docs/concepts/case-studies.rst tells the story), next to the
usage that survives every schedule.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_faultline.controller import Faultline

RUNS = 200
BUDGET_S = 60.0


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """A loopback HTTP/1.1 server (keep-alive), started before the runs, stopped after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _both(target: object, args: tuple[object, ...] = ()) -> None:
    threads = [threading.Thread(target=target, args=args) for _ in range(2)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# -- urllib3: a connection pool of one, shared by two threads ---------------------------------


def test_urllib3_pool_of_one_shared_by_two_threads(faultline: Faultline, http_server: str) -> None:
    urllib3 = pytest.importorskip("urllib3")
    host, port = http_server.removeprefix("http://").split(":")

    def body() -> None:
        statuses: list[int] = []
        with urllib3.HTTPConnectionPool(host, int(port), maxsize=1, block=True) as pool:

            def get() -> None:
                statuses.append(pool.request("GET", "/", timeout=5.0).status)

            _both(get)
        assert statuses == [200, 200]

    result = faultline.explore(body, runs=RUNS, budget=BUDGET_S, stall_timeout=10)
    assert result.passed, result.report


# -- requests: one session, its adapter's pool, two threads -----------------------------------


def test_requests_session_adapter_shared_by_two_threads(
    faultline: Faultline, http_server: str
) -> None:
    requests = pytest.importorskip("requests")

    def body() -> None:
        texts: list[str] = []
        with requests.Session() as session:
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=1, pool_block=True)
            session.mount("http://", adapter)

            def get() -> None:
                texts.append(session.get(http_server + "/", timeout=5).text)

            _both(get)
        assert texts == ["ok", "ok"]

    result = faultline.explore(body, runs=RUNS, budget=BUDGET_S, stall_timeout=10)
    assert result.passed, result.report


# -- cachetools: a memoized function called from two threads ----------------------------------


def _memoized_calls(faultline: Faultline, *, condition: bool) -> list[int]:
    cachetools = pytest.importorskip("cachetools")
    counts: list[int] = []

    def body() -> None:
        calls = [0]
        lock = threading.Lock()
        cond = threading.Condition(lock) if condition else None

        @cachetools.cached(cachetools.LRUCache(maxsize=8), lock=lock, condition=cond)  # type: ignore[untyped-decorator,misc,unused-ignore]
        def expensive(key: str) -> str:
            calls[0] += 1
            time.sleep(0.1)  # a slow computation (virtual time)
            return key.upper()

        def use() -> None:
            assert expensive("k") == "K"

        _both(use)
        counts.append(calls[0])
        assert calls[0] == 1, f"the function ran {calls[0]} times for one key"

    faultline.explore(body, runs=RUNS, budget=BUDGET_S)
    return counts


@pytest.mark.xfail(raises=AssertionError, strict=True, reason="cache stampede, documented")
def test_cachetools_cached_with_a_lock_computes_one_key_twice(faultline: Faultline) -> None:
    """``cached(cache, lock=...)`` does not hold the lock while the function runs: two threads
    that miss at once both compute (cachetools documents it; ``condition=`` prevents it)."""
    _memoized_calls(faultline, condition=False)


def test_cachetools_cached_with_a_condition_computes_once(faultline: Faultline) -> None:
    assert _memoized_calls(faultline, condition=True)


@pytest.mark.xfail(raises=KeyError, strict=True, reason="unlocked cache shared by threads")
def test_cachetools_lru_cache_shared_without_a_lock_breaks(faultline: Faultline) -> None:
    """``LRUCache`` is not thread-safe (documented): two threads inserting into a full cache
    evict the same key, and one ``popitem`` raises ``KeyError``."""
    cachetools = pytest.importorskip("cachetools")

    def body() -> None:
        cache = cachetools.LRUCache(maxsize=2)
        cache["a"], cache["b"] = 1, 2

        def insert(key: str) -> None:
            cache[key] = 0

        ts = [threading.Thread(target=insert, args=(k,)) for k in ("c", "d")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    faultline.explore(body, runs=RUNS, preempt="lines", modules=["cachetools"], budget=BUDGET_S)


def test_cachetools_lru_cache_behind_a_lock_survives(faultline: Faultline) -> None:
    cachetools = pytest.importorskip("cachetools")

    def body() -> None:
        cache = cachetools.LRUCache(maxsize=2)
        lock = threading.Lock()
        cache["a"], cache["b"] = 1, 2

        def insert(key: str) -> None:
            with lock:
                cache[key] = 0

        ts = [threading.Thread(target=insert, args=(k,)) for k in ("c", "d")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(cache) == 2

    result = faultline.explore(
        body, runs=RUNS, preempt="lines", modules=["cachetools"], budget=BUDGET_S
    )
    assert result.passed, result.report


# -- pybreaker: a circuit breaker shared by two threads, on the test's clock -----------------


def test_pybreaker_opens_after_fail_max_and_recovers(faultline: Faultline) -> None:
    pybreaker = pytest.importorskip("pybreaker")
    faultline.clock  # noqa: B018 - pybreaker reads datetime.now(): the clock makes it virtual

    def body() -> None:
        breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=30)
        outcomes: list[str] = []

        def failing() -> None:
            raise ConnectionError("down")

        def call() -> None:
            for _ in range(2):
                try:
                    breaker.call(failing)
                except pybreaker.CircuitBreakerError:
                    outcomes.append("open")
                except ConnectionError:
                    outcomes.append("failed")

        _both(call)
        # The second failure trips the breaker (that call raises CircuitBreakerError).
        assert outcomes.count("failed") == 1, outcomes
        assert outcomes.count("open") == 3, outcomes
        assert breaker.current_state == "open"
        time.sleep(31)
        assert breaker.call(lambda: "up") == "up"
        assert breaker.current_state == "closed"

    result = faultline.explore(body, runs=RUNS, budget=BUDGET_S)
    assert result.passed, result.report


# -- tenacity: retries with waits, in virtual time --------------------------------------------


def test_tenacity_retries_in_two_threads_in_virtual_time(faultline: Faultline) -> None:
    tenacity = pytest.importorskip("tenacity")

    def body() -> None:
        attempts: dict[str, int] = {}
        elapsed: list[float] = []
        lock = threading.Lock()

        @tenacity.retry(  # type: ignore[untyped-decorator,misc,unused-ignore]
            stop=tenacity.stop_after_attempt(5),
            wait=tenacity.wait_fixed(10),
            retry=tenacity.retry_if_exception_type(ConnectionError),
            reraise=True,
        )
        def flaky(name: str) -> str:
            with lock:
                attempts[name] = attempts.get(name, 0) + 1
                if attempts[name] < 3:
                    raise ConnectionError(name)
            return name

        def work() -> None:
            start = time.monotonic()
            assert flaky(threading.current_thread().name)
            elapsed.append(time.monotonic() - start)

        _both(work)
        assert sorted(attempts.values()) == [3, 3]
        assert elapsed == [pytest.approx(20.0)] * 2

    result = faultline.explore(body, runs=RUNS, budget=BUDGET_S)
    assert result.passed, result.report


# -- janus: a queue between a thread and asyncio ----------------------------------------------


def test_janus_queue_between_a_thread_and_a_task(faultline: Faultline) -> None:
    janus = pytest.importorskip("janus")

    def body() -> None:
        async def main() -> list[int]:
            q = janus.Queue()

            def produce() -> None:
                for i in range(3):
                    q.sync_q.put(i)

            t = threading.Thread(target=produce)
            t.start()
            got = [await q.async_q.get() for _ in range(3)]
            t.join()
            q.close()
            await q.wait_closed()
            return got

        assert asyncio.run(main()) == [0, 1, 2]

    result = faultline.explore(body, runs=50, budget=BUDGET_S, stall_timeout=10)
    assert result.passed, result.report


# -- filelock: one lock file, two threads -----------------------------------------------------


def test_filelock_guards_a_counter_file(faultline: Faultline, tmp_path: Path) -> None:
    filelock = pytest.importorskip("filelock")
    counter = tmp_path / "counter"

    def body() -> None:
        counter.write_text("0")
        lock = filelock.FileLock(str(tmp_path / "counter.lock"))

        def bump() -> None:
            with lock:
                value = int(counter.read_text())
                time.sleep(0.01)
                counter.write_text(str(value + 1))

        _both(bump)
        assert counter.read_text() == "2"

    result = faultline.explore(body, runs=RUNS, budget=BUDGET_S)
    assert result.passed, result.report
