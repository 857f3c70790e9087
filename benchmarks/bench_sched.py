"""Benchmark of the thread scheduler: decisions per second, and the median time to find each
classic concurrency bug, side by side with a naive stress loop (plain threads, repeated) on the
same code. Prints ratios; asserts nothing.

If frontrun is installed (the optional ``bench`` extra), the same bugs are then searched with
``frontrun.explore`` (``peers_frontrun.py``, run under frontrun's CLI, bounded) and its
schedules and seconds are printed beside ours; interleave-test is reported as compared or not.

    PYTHONPATH=src python benchmarks/bench_sched.py [--seeds N] [--stress-cap SECONDS]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


PEERS_SCRIPT = Path(__file__).resolve().parent / "peers_frontrun.py"
PEERS_TIMEOUT = 180.0  # seconds for the whole frontrun run; it is killed past this, never hangs
# Checked on the package index when this was written: interleave-test's only release (0.1.0)
# requires Python >= 3.12, so on older Pythons it cannot be installed at all.
INTERLEAVE_TEST_PYTHON = (3, 12)


def installed(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def interleave_test_line() -> str:
    version = installed("interleave-test")
    if version is not None:
        return (
            f"interleave-test {version}: installed but not compared: no release of it installs "
            "on the Python this benchmark was written on, so its API was not studied"
        )
    if sys.version_info < INTERLEAVE_TEST_PYTHON:
        return (
            "interleave-test: not installed and not installable here (its only release, 0.1.0, "
            f"requires Python >= 3.12; this is {sys.version.split()[0]}); not compared"
        )
    return "interleave-test: not installed (pip install interleave-test); not compared"


def run_frontrun(seeds: int) -> tuple[str | None, list[dict[str, Any]], str]:
    """Run peers_frontrun.py under frontrun's CLI (its documented way to run a script), bounded.

    Returns (frontrun version, one summary per bug and strategy, an error text or "").
    """
    import pytest_faultline

    env = dict(os.environ)
    # the child must import the same faultline source as this process
    src = str(Path(pytest_faultline.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-c",
        "import sys; from frontrun.cli import main; sys.exit(main(sys.argv[1:]))",
        sys.executable,
        str(PEERS_SCRIPT),
        "--seeds",
        str(seeds),
    ]
    # a session of its own, so a timeout can end the CLI and the python it starts together
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    killed = False
    try:
        out, err = proc.communicate(timeout=PEERS_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        killed = True
    version, rows = None, []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue  # not one of ours (the CLI or frontrun may print too)
        data = json.loads(line)
        if "frontrun" in data:
            version = data["frontrun"]
        else:
            rows.append(data)
    if killed:
        problem = f"killed after {PEERS_TIMEOUT:g} s; the rows below are those it finished"
    elif proc.returncode != 0 or not rows:
        problem = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    else:
        problem = ""
    return version, rows, problem


def frontrun_cell(row: dict[str, Any] | None, ours: float) -> str:
    if row is None:
        return "not run"
    if row["found"] == row["runs"]:
        seconds = row["median_seconds"]
        return f"{seconds * 1000:>6.1f} {row['median_schedules']:>5.0f} {seconds / ours:>7.1f}x"
    return f"not found ({row['seconds']:.1f} s)"


def peers(ours: dict[str, tuple[float, float]], seeds: int) -> list[str]:
    """Lines comparing faultline with interleave-test and frontrun on the same bugs."""
    lines = [interleave_test_line()]
    if installed("frontrun") is None:
        lines.append("frontrun: not installed (optional: pip install frontrun); not compared")
        return lines
    version, rows, problem = run_frontrun(seeds)
    if problem:
        lines.append(f"frontrun: the comparison run failed: {problem}")
    if not rows:
        return lines
    by_key = {(row["bug"], row["strategy"]): row for row in rows}
    lines.append(
        f"frontrun {version}, frontrun.explore() on the same code (setup builds the bug, one "
        "worker per thread, invariant = the check):"
    )
    header = f"{'bug':<26} {'faultline':>15}   {'frontrun dpor':>22}   {'frontrun random':>22}"
    lines += [
        header,
        f"{'':<26} {'ms  sched':>15}   {'ms  sched   ratio':>22}   {'ms  sched   ratio':>22}",
        "-" * len(header),
    ]
    notes = []
    for bug in BUGS:
        median, schedules = ours[bug.name]
        cells = []
        for strategy in ("dpor", "random"):
            row = by_key.get((bug.name, strategy))
            cells.append(frontrun_cell(row, median))
            if row is not None and row["found"] < row["runs"]:
                notes.append(
                    f"  {bug.name}, frontrun {strategy}: not reported as a bug "
                    f"({row['found']}/{row['runs']} searches); {row['verdict']}"
                )
        lines.append(
            f"{bug.name:<26} {median * 1000:>8.1f} {schedules:>6.0f}   "
            f"{cells[0]:>22}   {cells[1]:>22}"
        )
    lines += notes
    lines += [
        f"frontrun dpor: its default systematic search (deterministic; median of {seeds} runs);",
        f"frontrun random: random opcode-level schedules (seeds 1..{seeds}); sched: executions",
        "until the failure; ratio: frontrun time / faultline time (above 1: faultline is faster);",
        "time to the first failure, no re-runs of it (frontrun: reproduce_on_failure=0);",
        "each frontrun search is capped at 1,000 schedules, 2 s, and 1 s per execution.",
    ]
    return lines


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
    ours: dict[str, tuple[float, float]] = {}
    for bug in BUGS:
        found = [faultline_find(bug, seed) for seed in range(1, args.seeds + 1)]
        median = statistics.median(t for t, _ in found)
        schedules = statistics.median(n for _, n in found)
        ours[bug.name] = (median, schedules)
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
    print()
    print("peers, the same bugs with their own APIs:")
    for line in peers(ours, args.seeds):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
