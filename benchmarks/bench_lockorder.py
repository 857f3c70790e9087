"""Cost of an uncontended acquire/release with the lock-order watcher on and off.

Prints ``lockorder on ratio: X``: a lock made while the watcher is active against a plain
``threading.Lock`` (target <= 5x); the worst of ``acquire()``/``release()``, ``with`` and an
RLock's ``with``. Prints ``lockorder off ratio: X``: the plugin imported and the watcher stopped,
a lock made afterwards against a plain lock (target <= 1.05). Each ratio is the median over
rounds of best-of timings; plain and tracked are timed alternately so machine load affects both.

    python benchmarks/bench_lockorder.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import timeit
from collections.abc import Callable
from typing import Any

import pytest_faultline.plugin  # noqa: F401  - "plugin installed"
from pytest_faultline.lockorder import LockOrder

NUMBER = 200_000
REPEAT = 5


def _pair(lock: Any) -> Callable[[], None]:
    def pair() -> None:
        lock.acquire()
        lock.release()

    return pair


def _with(lock: Any) -> Callable[[], None]:
    def block() -> None:
        with lock:
            pass

    return block


def _best_ns(fn: Callable[[], None]) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e9


def _ratio(rounds: int, subject: Callable[[], None], baseline: Callable[[], None]) -> float:
    return statistics.median(_best_ns(subject) / _best_ns(baseline) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds

    plain, plain_rlock = threading.Lock(), threading.RLock()
    with LockOrder():
        tracked, tracked_rlock = threading.Lock(), threading.RLock()
        on = {
            "acquire/release": _ratio(rounds, _pair(tracked), _pair(plain)),
            "with": _ratio(rounds, _with(tracked), _with(plain)),
            "RLock with": _ratio(rounds, _with(tracked_rlock), _with(plain_rlock)),
        }
    # A tracked lock that outlives its watcher (made in one test, used after it): informative.
    leftover = _ratio(rounds, _with(tracked), _with(plain))
    off_lock = threading.Lock()  # made with the watcher stopped: a plain lock again
    off = _ratio(rounds, _with(off_lock), _with(plain))

    for name, ratio in on.items():
        print(f"  on, {name}: {ratio:.2f}x")
    print(f"  tracked lock used after its watcher stopped, with: {leftover:.2f}x")
    print(f"lockorder on ratio: {max(on.values()):.2f}")
    print(f"lockorder off ratio: {off:.2f}")


if __name__ == "__main__":
    main()
