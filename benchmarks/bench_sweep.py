"""The fault-space sweep: runs per second, and the time to sweep each example's main scenario.

Target: a single-fault sweep of an example test in under 5 s. Each of the five examples' main
scenario is swept with its incident's fault kinds (condor_alive: stall, truncate at every socket
operation; proofd_disconnect: disconnect at every fault point; guardian_cas: preempt and
preempt_step at every scheduling point of its threads; midas_cm_msg: preempt, the client and the
watchdog; proofd_asyncio: preempt and preempt_step at every task switch), on the fixed and on the
buggy implementation, alternating with plain runs of the same body in the same process, so the
per-run overhead of the sweep is a ratio measured in one run. (A plain run of a threaded body
is a run without the scheduler, on real time: guardian's 16 Hz loop takes its real 0.5 s there
and a few milliseconds of virtual time under the sweep, so its ratio is below 1.) Prints
``single-fault sweep, slowest example: X s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import inspect
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 5.0
ROUNDS = 3
POINT_SITES = 200


def load(example: str, test_file: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "examples" / example / "src"))
    path = ROOT / "examples" / example / "tests" / test_file
    spec = importlib.util.spec_from_file_location(f"bench_{example}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_once(body: Callable[[], object], kinds: list[str], seed: int) -> tuple[float, int, int]:
    """(seconds, runs, failures) of one sweep of ``body`` in a fresh controller."""
    from pytest_faultline.controller import Faultline

    fl = Faultline(seed=seed, nodeid="bench")
    try:
        started = time.perf_counter()
        found = fl.sweep(body, kinds=kinds, raises=False)
        elapsed = time.perf_counter() - started
    finally:
        fl.close()
    return elapsed, len(found.runs), len(found.failures)


def plain_once(body: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = body()
    if inspect.iscoroutine(result):
        asyncio.run(result)
    return time.perf_counter() - started


def many_points() -> None:
    from pytest_faultline import InjectedFault, point

    for i in range(POINT_SITES):
        with contextlib.suppress(InjectedFault):
            point(f"bench.site{i % 20}")


def scenarios(tmp: Path) -> list[tuple[str, Callable[[], object], list[str]]]:
    condor = load("condor_alive", "test_alive_sweep.py")
    proofd = load("proofd_disconnect", "test_proofd_sweep.py")
    guardian = load("guardian_cas", "test_guardian_sweep.py")
    midas = load("midas_cm_msg", "test_midas_sweep.py")
    aio = load("proofd_asyncio", "test_proofd_asyncio_sweep.py")
    from condor_alive import IMPLEMENTATIONS as CONDOR
    from condor_alive.core import Claim
    from guardian_cas import IMPLEMENTATIONS as GUARDIAN
    from midas_cm_msg import IMPLEMENTATIONS as MIDAS
    from proofd_asyncio import IMPLEMENTATIONS as AIO
    from proofd_disconnect import IMPLEMENTATIONS as PROOFD

    claim = Claim("<10.0.0.7:9618>#1700000000#1#0123456789abcdef", "42.0")
    found = []
    for name in ("fixed", "buggy"):
        found.append(
            (
                f"condor_alive {name}",
                lambda m=CONDOR[name]: condor.two_alive_rounds(m, claim),
                condor.KINDS,
            )
        )
        found.append(
            (
                f"proofd_disconnect {name}",
                lambda m=PROOFD[name]: proofd.two_clients_work(m, tmp),
                proofd.KINDS,
            )
        )
        found.append(
            (
                f"guardian_cas {name}",
                lambda m=GUARDIAN[name]: guardian.operated_guardian(m),
                guardian.KINDS,
            )
        )
        found.append(
            (
                f"midas_cm_msg {name}",
                lambda m=MIDAS[name]: midas.client_and_watchdog(m),
                midas.KINDS,
            )
        )
        found.append((f"proofd_asyncio {name}", aio_body(aio, AIO[name]), aio.KINDS))
    return found


def aio_body(test_module: ModuleType, implementation: ModuleType) -> Callable[[], object]:
    """A coroutine function (the sweep runs it on its controlled loop); called plainly, it is
    run by ``asyncio.run`` (see :func:`plain_once`)."""

    async def body() -> None:
        await test_module.reconnect_with_the_same_id(implementation)

    return body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the examples log every failed keepalive and drop
    slowest = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, body, kinds in scenarios(Path(tmp)):
            sweeps, plains, runs, failures = [], [], 0, 0
            for i in range(args.rounds):  # alternate: a plain run, then a sweep
                try:
                    plains.append(plain_once(body))
                except Exception:  # the buggy bodies may fail plainly too (a timeout, a deadlock)
                    plains.append(float("nan"))
                seconds, runs, failures = sweep_once(body, kinds, seed=i)
                sweeps.append(seconds)
            sweep_s = statistics.median(sweeps)
            plain_s = statistics.median(plains)
            per_run = sweep_s / (runs + 1)
            rows.append(
                (label, ",".join(kinds), runs, failures, sweep_s, runs / sweep_s, per_run, plain_s)
            )
            slowest = max(slowest, sweep_s)
        point_sweeps = [sweep_once(many_points, ["raise"], seed=i) for i in range(args.rounds)]
        points_s = [seconds for seconds, _, _ in point_sweeps]
        point_runs = point_sweeps[0][1] + 1  # every hit of every point is a site, + recording
    print(
        f"{'example':<24}{'kinds':<22}{'runs':>6}{'failed':>8}{'sweep s':>10}{'runs/s':>9}"
        f"{'s/run':>9}{'plain s':>9}{'ratio':>7}"
    )
    for label, kinds, runs, failures, sweep_s, rate, per_run, plain_s in rows:
        print(
            f"{label:<24}{kinds:<22}{runs:>6}{failures:>8}{sweep_s:>10.2f}{rate:>9.1f}"
            f"{per_run:>9.3f}{plain_s:>9.3f}{per_run / plain_s:>7.2f}"
        )
    print("ratio: the sweep's time per run / one plain run of the same body (median of rounds)")
    points = statistics.median(points_s)
    print(f"point sweep: {point_runs} runs of {POINT_SITES} point hits each in {points:.3f} s")
    print(f"sweep runs per second (points): {point_runs / points:,.0f}")
    print(f"single-fault sweep, slowest example: {slowest:.2f} s (target < {TARGET_S:g} s)")


if __name__ == "__main__":
    main()
