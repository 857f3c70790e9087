"""Benchmark of the controlled asyncio loop: task scheduling decisions per second, and the time
from a cold process to the first failing schedule of each classic asyncio race (target
< 0.1 s), side by side with frontrun's ``explore_async_random`` when it is installed (simloom,
simloop and seedloop are not on the package index here). Prints figures; asserts nothing.

Each race is one small program, written once as ``(setup, tasks, invariant)`` (frontrun's shape)
and run by us as ``gather(*tasks)`` then the invariant. Each cold measurement is a fresh
interpreter that imports asyncio and the tool, searches, and prints the seconds from its first
line to the end of the search (the imports included), split into asyncio's import, the tool's
import and the search; runs of ours and frontrun's alternate. A child imports only what a
plain ``asyncio.run`` program would (asyncio and the tool): this script's own machinery
(argparse, subprocess, statistics, json) is imported by the parent or after the clock stops.
``--baseline-src`` measures another checkout's ``src`` alongside (before/after).

    PYTHONPATH=src python benchmarks/bench_async.py [--repeat N] [--baseline-src DIR]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

ASYNCIO_IMPORTED = time.perf_counter()  # a child's clock: asyncio (and this module) are loaded

Task = Callable[[Any], Coroutine[Any, Any, None]]
Race = tuple[Callable[[], Any], list[Task], Callable[[Any], bool]]


# -- the races -------------------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.value = 0

    async def increment(self) -> None:
        seen = self.value
        await asyncio.sleep(0)
        self.value = seen + 1


class Cache:
    def __init__(self) -> None:
        self.entries: dict[str, str] = {}
        self.fetches = 0

    async def get(self, key: str) -> str:
        if key not in self.entries:
            self.fetches += 1
            await asyncio.sleep(0.01)  # the backend round trip
            self.entries[key] = key.upper()
        return self.entries[key]


class Account:
    """The window spans only awaits that never suspend."""

    def __init__(self) -> None:
        self.balance = 100
        self.paid = 0

    async def read(self) -> int:
        return self.balance

    async def write(self, value: int) -> None:
        self.balance = value

    async def withdraw(self, amount: int) -> None:
        balance = await self.read()
        if balance >= amount:
            await self.write(balance - amount)
            self.paid += amount


class Inbox:
    """Check under a free lock, then act under it again: the lock never blocks."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.taken: list[int] = []
        self.items = [1]

    async def take(self) -> None:
        async with self.lock:
            has = bool(self.items)
        if has:
            async with self.lock:
                self.taken.append(self.items.pop() if self.items else -1)


RACES: dict[str, Race] = {
    "lost_update": (
        Counter,
        [lambda c: c.increment(), lambda c: c.increment()],
        lambda c: c.value == 2,
    ),
    "check_then_act": (
        Cache,
        [lambda c: c.get("a"), lambda c: c.get("a")],
        lambda c: c.fetches == 1,
    ),
    "free_lock_window": (
        Inbox,
        [lambda s: s.take(), lambda s: s.take()],
        lambda s: -1 not in s.taken,
    ),
    "no_suspension": (
        Account,
        [lambda a: a.withdraw(80), lambda a: a.withdraw(80)],
        lambda a: a.paid <= 100,
    ),
}
AWAITS = {"no_suspension"}  # needs preempt="awaits" on this module


def _thread_update() -> Callable[[], Coroutine[Any, Any, None]]:
    """A task and an ``asyncio.to_thread`` worker bump one counter (tasks and threads)."""

    async def body() -> None:
        import threading

        state = {"n": 0}
        lock = threading.Lock()

        def worker() -> None:
            with lock:
                seen = state["n"]
                time.sleep(0)
                state["n"] = seen + 1

        async def task() -> None:
            seen = state["n"]
            await asyncio.sleep(0)
            state["n"] = seen + 1

        await asyncio.gather(asyncio.to_thread(worker), task())
        assert state["n"] == 2

    return body


def _pool_update() -> Callable[[], Coroutine[Any, Any, None]]:
    """Two ``run_in_executor`` jobs on a pool made in the body add to one balance."""

    async def body() -> None:
        import concurrent.futures

        account = {"balance": 0}

        def deposit(amount: int) -> None:
            seen = account["balance"]
            time.sleep(0)
            account["balance"] = seen + amount

        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            await asyncio.gather(
                loop.run_in_executor(pool, deposit, 10), loop.run_in_executor(pool, deposit, 5)
            )
        assert account["balance"] == 15

    return body


# Races of tasks and threads (the loop runs as a managed thread): strategy table only.
MIXED: dict[str, Callable[[], Callable[[], Coroutine[Any, Any, None]]]] = {
    "task + to_thread": _thread_update,
    "two executor jobs": _pool_update,
}


def ours_body(name: str) -> Callable[[], Coroutine[Any, Any, None]]:
    setup, tasks, invariant = RACES[name]

    async def body() -> None:
        state = setup()
        await asyncio.gather(*(t(state) for t in tasks))
        assert invariant(state), name

    return body


# -- one cold search, in this process (run as a child) ---------------------------------------------


def child(tool: str, name: str, start: float) -> None:
    if tool in ("faultline", "before"):  # before: the same, from --baseline-src
        from pytest_faultline.controller import Faultline

        imported = time.perf_counter()
        fl = Faultline(seed=1, nodeid="bench")
        try:
            extra: dict[str, Any] = {}
            if name in AWAITS:
                extra = {"preempt": "awaits", "modules": [module_name()]}
            found = fl.explore(ours_body(name), runs=500, raises=False, shrink=False, **extra)
        finally:
            fl.close()
        failed, schedules = found.failure is not None, found.schedules
    else:
        import frontrun  # type: ignore[import-untyped,unused-ignore]

        imported = time.perf_counter()
        setup, tasks, invariant = RACES[name]
        result = asyncio.run(
            frontrun.explore_async_random(
                setup=setup, tasks=tasks, invariant=invariant, max_attempts=500, seed=1
            )
        )
        failed = not result.property_holds
        schedules = getattr(result, "num_explored", -1)
    now = time.perf_counter()
    import json

    print(
        json.dumps(
            {
                "failed": failed,
                "seconds": now - start,
                "asyncio": ASYNCIO_IMPORTED - start,
                "import": imported - ASYNCIO_IMPORTED,
                "search": now - imported,
                "schedules": schedules,
                "pytest": "pytest" in sys.modules,
            }
        )
    )


def module_name() -> str:
    return __name__ if __name__ != "__main__" else "bench_async"


def cold(tool: str, name: str, src: str | None = None) -> dict[str, Any]:
    import json
    import os
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        "import time; _t0 = time.perf_counter(); import sys; "
        f"sys.path.insert(0, {here!r}); import bench_async; "
        f"bench_async.child({tool!r}, {name!r}, _t0)"
    )
    # A user's process finds compiled bytecode; this machine sets PYTHONDONTWRITEBYTECODE.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if src is not None:  # another checkout's faultline (--baseline-src)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"failed": False, "seconds": float("nan"), "error": out.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- decisions per second ------------------------------------------------------------------------


def decisions_per_second() -> float:
    from pytest_faultline.controller import Faultline

    async def body() -> None:
        async def worker() -> None:
            for _ in range(200):
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(4)))

    fl = Faultline(seed=2, nodeid="bench")
    try:
        start = time.perf_counter()
        found = fl.explore(body, runs=20, strategy="random")
        elapsed = time.perf_counter() - start
    finally:
        fl.close()
    return found.decisions / elapsed


# -- schedules to the first failure, by strategy ---------------------------------------------------


STRATEGY_SEEDS = 9
STRATEGY_RUNS = 500


def schedules_to_failure(
    body: Callable[[], Coroutine[Any, Any, None]], strategy: str, seed: int, extra: dict[str, Any]
) -> int | None:
    """Schedules run until the first failure (None: not found within STRATEGY_RUNS)."""
    import warnings

    from pytest_faultline.controller import Faultline

    fl = Faultline(seed=seed, nodeid="bench")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dfs that did not finish: the table says so
            found = fl.explore(
                body, runs=STRATEGY_RUNS, strategy=strategy, raises=False, shrink=False, **extra
            )
    finally:
        fl.close()
    return found.schedules if found.failure is not None else None


def strategy_table() -> None:
    """Median schedules to the first failure per race and strategy (warm, in this process)."""
    import importlib
    import os
    import statistics

    from pytest_faultline.exploring import STRATEGIES, TASK_STRATEGY

    # The races' code must be the importable module's (preempt="awaits" patches its awaits).
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)  # run by run_all.py through runpy
    module = importlib.import_module(module_name())
    races: dict[str, tuple[Callable[[], Coroutine[Any, Any, None]], dict[str, Any]]] = {}
    for name in RACES:
        extra = {"preempt": "awaits", "modules": [module_name()]} if name in AWAITS else {}
        races[name] = (module.ours_body(name), extra)
    for name, make in MIXED.items():
        races[name] = (make(), {})
    print(
        f"schedules until the first failure (median of {STRATEGY_SEEDS} seeds, at most "
        f"{STRATEGY_RUNS}; warm, in this process); task default: {TASK_STRATEGY} (exploring.py: "
        f"level here, and the only one that finds the redis.asyncio race over real sockets)"
    )
    print(f"{'race':20}" + "".join(f"{s:>14}" for s in STRATEGIES))
    totals = dict.fromkeys(STRATEGIES, 0.0)
    for name, (body, extra) in races.items():
        row = f"{name:20}"
        for strategy in STRATEGIES:
            counts = [
                schedules_to_failure(body, strategy, seed, extra)
                for seed in range(1, STRATEGY_SEEDS + 1)
            ]
            found = [c for c in counts if c is not None]
            # a miss counts as the whole budget: the median says "not found" when most miss
            median = statistics.median([c if c is not None else STRATEGY_RUNS for c in counts])
            totals[strategy] += median
            cell = f"{median:g}" if len(found) * 2 > len(counts) else f">{STRATEGY_RUNS}"
            if len(found) < len(counts):
                cell += f" ({len(found)}/{len(counts)})"
            row += f"{cell:>14}"
        print(row)
    print(f"{'sum of medians':20}" + "".join(f"{totals[s]:>14g}" for s in STRATEGIES))


def main() -> None:
    import argparse
    import importlib.util
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="cold runs per race and tool")
    parser.add_argument(
        "--baseline-src",
        help="the src directory of another checkout: its cold start is measured alongside "
        "(the 'before' rows)",
    )
    parser.add_argument(
        "--strategies-only", action="store_true", help="print only the strategy table"
    )
    args = parser.parse_args()
    if args.strategies_only:
        strategy_table()
        return
    peers = ["frontrun"] if importlib.util.find_spec("frontrun") else []
    tools = ["faultline", *(["before"] if args.baseline_src else []), *peers]
    srcs = {"before": args.baseline_src}
    print(f"python {sys.version.split()[0]}; peers installed: {', '.join(peers) or 'none'}")
    print("simloom, simloop, seedloop: not on the package index here (pip index versions)")
    print(f"task scheduling decisions per second: {decisions_per_second():,.0f}")
    print()
    strategy_table()
    print()
    print(
        f"{'race':18} {'tool':10} {'found':>7} {'cold s':>8} {'search s':>9} {'schedules':>10}"
        f" {'asyncio s':>10} {'import s':>9} {'pytest':>7}"
    )
    for tool in tools:
        cold(tool, "lost_update", srcs.get(tool))  # warm-up: writes the bytecode caches
    for name in RACES:
        results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        for _ in range(args.repeat):
            for tool in results:  # alternate the tools
                results[tool].append(cold(tool, name, srcs.get(tool)))
        for tool, runs in results.items():
            found = sum(1 for r in runs if r.get("failed"))
            good = [r for r in runs if r.get("failed")]

            def median(key: str, good: list[dict[str, Any]] = good) -> str:
                values = [r[key] for r in good if key in r]
                return f"{statistics.median(values):.3f}" if values else "-"

            scheds = runs[-1].get("schedules", "-")
            pytest_loaded = "yes" if any(r.get("pytest") for r in good) else "no"
            print(
                f"{name:18} {tool:10} {found:>3}/{len(runs):<3} {median('seconds'):>8} "
                f"{median('search'):>9} {scheds!s:>10} {median('asyncio'):>10} "
                f"{median('import'):>9} {pytest_loaded:>7}"
            )
            if not found and runs[-1].get("error"):
                print(f"    {tool} error: {runs[-1]['error']}")
    print()
    print(
        "cold s: from the child's first line to the end of the search, median; asyncio s: of "
        "it, starting Python's clock to asyncio imported; import s: importing the tool; "
        "search s: the search (explore() until it returns); pytest: whether the child loaded "
        "pytest (a plain asyncio.run program should not)"
    )


if __name__ == "__main__":
    main()
