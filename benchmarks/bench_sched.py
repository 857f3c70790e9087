"""Benchmark of the thread scheduler: decisions per second, and the median time to find each
classic concurrency bug, side by side with a naive stress loop (plain threads, repeated) on the
same code. Prints ratios; asserts nothing.

    PYTHONPATH=src python benchmarks/bench_sched.py [--seeds N] [--stress-cap SECONDS]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_faultline import _raw
from pytest_faultline.controller import Faultline

HERE = __name__
Targets = list[Callable[[], object]]
Check = Callable[[], None]


# -- the classic bugs, as (threads to run, check afterwards) ---------------------------------------


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> None:
        current = self.value
        self.value = current + 1


def lost_update() -> tuple[Targets, Check]:
    counter = Counter()

    def check() -> None:
        assert counter.value == 2, "lost update"

    return [counter.increment, counter.increment], check


def check_then_act() -> tuple[Targets, Check]:
    lock = threading.Lock()
    items = {"a": "stale", "b": "fresh", "c": "stale"}

    def purge() -> None:
        with lock:
            stale = [k for k, v in items.items() if v == "stale"]
        for key in stale:
            with lock:
                del items[key]

    def check() -> None:
        assert items == {"b": "fresh"}

    return [purge, purge], check


def abba() -> tuple[Targets, Check]:
    first, second = threading.Lock(), threading.Lock()

    def forward() -> None:
        with first, second:
            pass

    def backward() -> None:
        with second, first:
            pass

    return [forward, backward], lambda: None


def lost_wakeup() -> tuple[Targets, Check]:
    cond = threading.Condition()
    state = {"ready": False}

    def consumer() -> None:
        if not state["ready"]:
            with cond:
                cond.wait()

    def producer() -> None:
        state["ready"] = True
        with cond:
            cond.notify()

    return [consumer, producer], lambda: None


class Lazy:
    def __init__(self) -> None:
        self.conn: object | None = None
        self.opened = 0

    def get(self) -> object:
        if self.conn is None:
            self.opened += 1
            self.conn = object()
        return self.conn


def double_init() -> tuple[Targets, Check]:
    lazy = Lazy()

    def check() -> None:
        assert lazy.opened == 1, "opened twice"

    return [lazy.get, lazy.get], check


@dataclass(frozen=True)
class Bug:
    name: str
    make: Callable[[], tuple[Targets, Check]]
    options: dict[str, Any]


BUGS = (
    Bug("lost update (lines)", lost_update, {"preempt": "lines", "modules": [HERE]}),
    Bug("check-then-act on a dict", check_then_act, {}),
    Bug("ABBA deadlock", abba, {}),
    Bug("lost wakeup (lines)", lost_wakeup, {"preempt": "lines", "modules": [HERE]}),
    Bug("double lazy init (lines)", double_init, {"preempt": "lines", "modules": [HERE]}),
)


# -- faultline -------------------------------------------------------------------------------------


def body_of(bug: Bug) -> Callable[[], None]:
    def body() -> None:
        targets, check = bug.make()
        threads = [threading.Thread(target=t) for t in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check()

    return body


def faultline_find(bug: Bug, seed: int) -> tuple[float, int]:
    """Seconds until the first failing schedule, and the schedules it took."""
    fl = Faultline(seed=seed, nodeid="bench")
    try:
        result = fl.explore(body_of(bug), runs=10_000, raises=False, **bug.options)
    finally:
        fl.close()
    if result.found_after is None:
        raise SystemExit(f"faultline did not find {bug.name} with seed {seed}")
    return result.found_after, result.schedules


def decisions_per_second() -> tuple[float, float]:
    """Decisions (choices between 2+ runnable threads) and context switches per second."""

    def body() -> None:
        lock = threading.Lock()

        def work() -> None:
            for _ in range(300):
                with lock:
                    pass

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    fl = Faultline(seed=1, nodeid="bench")
    try:
        result = fl.explore(body, runs=5, strategy="random")
    finally:
        fl.close()
    return result.decisions / result.elapsed, result.elapsed / result.schedules


# -- a naive stress loop: plain threads, repeated --------------------------------------------------


def stress_find(bug: Bug, cap: float) -> tuple[float | None, int]:
    """Seconds until plain threads show the bug (None if not within ``cap``), and the tries."""
    started = _raw.monotonic()
    tries = 0
    while _raw.monotonic() - started < cap:
        tries += 1
        targets, check = bug.make()
        threads = [threading.Thread(target=t, daemon=True) for t in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(0.5)
        if any(t.is_alive() for t in threads):  # deadlocked (left behind: they are daemons)
            return _raw.monotonic() - started, tries
        try:
            check()
        except AssertionError:
            return _raw.monotonic() - started, tries
    return None, tries


def peers() -> str:
    names = ("interleave_test", "frontrun")
    found = [name for name in names if importlib.util.find_spec(name) is not None]
    if not found:
        return "peers: interleave-test and frontrun are not installed (optional); not compared"
    return f"peers installed but not wired into this benchmark yet: {', '.join(found)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=9, help="runs per bug for the median")
    parser.add_argument(
        "--stress-cap", type=float, default=2.0, help="seconds a stress loop may try per attempt"
    )
    parser.add_argument("--stress-attempts", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, switch interval {sys.getswitchinterval()} s")
    rate, per_run = decisions_per_second()
    print(f"scheduling decisions per second: {rate:,.0f} (target >= 2,000)")
    print(f"one run of 4 threads x 300 lock operations: {per_run * 1000:.1f} ms")
    print()
    header = (
        f"{'bug':<26} {'faultline median':>16} {'schedules':>9} {'stress median':>28} {'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for bug in BUGS:
        found = [faultline_find(bug, seed) for seed in range(1, args.seeds + 1)]
        median = statistics.median(t for t, _ in found)
        schedules = statistics.median(n for _, n in found)
        stress = [stress_find(bug, args.stress_cap) for _ in range(args.stress_attempts)]
        hits = [t for t, _ in stress if t is not None]
        if len(hits) > len(stress) // 2:
            stress_median = statistics.median(
                t if t is not None else args.stress_cap for t, _ in stress
            )
            stress_text, ratio_text = f"{stress_median:.3f} s", f"{stress_median / median:,.0f}x"
        else:
            tries = sum(n for _, n in stress)
            stress_text = f"> {args.stress_cap:g} s"
            ratio_text = f"> {args.stress_cap / median:,.0f}x"
            stress_text += f" ({len(hits)}/{len(stress)}, {tries:,} tries)"
        print(
            f"{bug.name:<26} {median * 1000:>13.1f} ms {schedules:>9.0f} "
            f"{stress_text:>28} {ratio_text:>8}"
        )
    print()
    print("faultline median: time to the first failing schedule (target < 0.1 s);")
    print("stress: plain threads run again and again on the same code until the bug shows;")
    print("ratio: stress time / faultline time (how many times faster the scheduler finds it).")
    print(peers())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
