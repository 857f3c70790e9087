"""Benchmark of the thread scheduler.

1. Cold start, side by side with the peers: for each classic bug, the time from the first
   ``explore`` call in a **fresh process** to the end of the first failing schedule (cold),
   and the median of the next explorations in the same process (warm). Each tool runs in its own
   child process, the tools alternating for every (seed, bug); the tool's package is imported
   before the clock starts, as a test module or plugin would have imported it (for faultline:
   the controller and the thread scheduler, which the plugin loads when pytest starts), and
   what it imports lazily on its first exploration is timed (for faultline: the failure report).
   ``incl. import`` adds each tool's import: what a fresh process pays in all.
   Peers: interleave-test (Python 3.12+; opcode and line granularity, its default random
   strategy) and frontrun (``random`` and its default ``dpor``), each when installed. Printed:
   each median and ``faultline cold / best peer cold`` (target <= 1 on each bug).
2. The strategies on the same bugs: the median number of schedules until the first failure
   (this chose ``DEFAULT_STRATEGY``).
3. The cost of ``preempt="bytecode"`` and ``"lines"`` on a module, against ``"sync"``.
4. Decisions per second, and the warm median time to find each bug beside a naive stress loop
   (plain threads, repeated), and frontrun in-process (``peers_frontrun.py``).

Prints ratios; asserts nothing.

    PYTHONPATH=src python benchmarks/bench_sched.py [--seeds N] [--cold-seeds N] [--quick]

Run it with Python 3.12+ to compare with interleave-test (its only release needs 3.12).
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
from typing import TYPE_CHECKING, Any

from pytest_faultline import _raw

if TYPE_CHECKING:
    from pytest_faultline.controller import Faultline

HERE = __name__


def new_faultline(seed: int) -> Faultline:
    """A controller as the fixture makes one (imported here: the cold start times its import)."""
    from pytest_faultline.controller import Faultline

    return Faultline(seed=seed, nodeid="bench")


Targets = list[Callable[[], object]]
Check = Callable[[], None]


# -- the classic bugs, as (threads to run, check afterwards) ---------------------------------------


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> None:
        current = self.value
        self.value = current + 1


class Hits:
    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> None:
        self.n += 1  # one line: only a switch between its bytecodes loses an update


def counter_increment() -> tuple[Targets, Check]:
    hits = Hits()

    def check() -> None:
        assert hits.n == 2, "lost increment"

    return [hits.bump, hits.bump], check


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
    Bug("n += 1 (bytecode)", counter_increment, {"preempt": "bytecode", "modules": [HERE]}),
)
# The bugs the issue names "classic" (cold start target: <= the best peer on each).
CLASSIC = tuple(bug.name for bug in BUGS)


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
    fl = new_faultline(seed)
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

    fl = new_faultline(1)
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


# -- cold start: one fresh process per (tool, bug, seed) ------------------------------------------

COLD_TIMEOUT = 60.0  # seconds for one child; it is killed past this, never hangs
PEER_CAP = 1_000  # schedules a peer may try per search
WARM_REPEATS = 3  # explorations after the cold one, in the same child


def _found_at(bug: Bug, seed: int, strategy: str | None) -> tuple[float, int]:
    """One faultline exploration: seconds from the call to the end of the first failing
    schedule, and the schedules it took. The end of that schedule is when the body is called
    once more (the first replay that checks its token), which counts a little against us."""
    calls: list[float] = []
    inner = body_of(bug)

    def body() -> None:
        calls.append(_raw.monotonic())
        inner()

    options = dict(bug.options)
    if strategy is not None:
        options["strategy"] = strategy
    started = _raw.monotonic()
    fl = new_faultline(seed)
    try:
        result = fl.explore(body, runs=10_000, raises=False, **options)
    finally:
        fl.close()
    if result.failure is None or len(calls) <= result.schedules:
        raise SystemExit(f"faultline did not find {bug.name} with seed {seed}")
    return calls[result.schedules] - started, result.schedules


def _interleave_find(bug: Bug, seed: int, granularity: str) -> tuple[float, int]:
    import interleave_test

    started = _raw.monotonic()
    result = interleave_test.explore(
        body_of(bug),
        iterations=PEER_CAP,
        seed=seed,
        granularity=granularity,
        include=[str(Path(__file__).resolve().parent)],
        timeout=5.0,
        raise_on_failure=False,
    )
    seconds = _raw.monotonic() - started
    if result.failure is None:
        raise SystemExit(f"interleave-test ({granularity}) did not find {bug.name}")
    return seconds, int(result.schedules_run)


def _frontrun_find(bug: Bug, seed: int, strategy: str) -> tuple[float, int]:
    from peers_frontrun import search

    row = search(bug, strategy, seed)
    if not row["found"]:
        raise SystemExit(f"frontrun {strategy} did not find {bug.name}: {row['verdict']}")
    return float(row["seconds"]), int(row["schedules"])


# tool -> (how to find a bug with a seed, whether it runs under frontrun's CLI)
FINDERS: dict[str, tuple[Callable[[Bug, int], tuple[float, int]], bool]] = {
    "faultline": (lambda bug, seed: _found_at(bug, seed, None), False),
    # the same, importing pytest_faultline from --baseline-src (another checkout): before/after
    "faultline baseline": (lambda bug, seed: _found_at(bug, seed, None), False),
    "interleave-test line": (lambda bug, seed: _interleave_find(bug, seed, "line"), False),
    "interleave-test opcode": (lambda bug, seed: _interleave_find(bug, seed, "opcode"), False),
    "frontrun random": (lambda bug, seed: _frontrun_find(bug, seed, "random"), True),
    "frontrun dpor": (lambda bug, seed: _frontrun_find(bug, seed, "dpor"), True),
}


# What a test module (or the plugin, for faultline) has imported before the first search. The
# plugin loads the controller and the thread scheduler when pytest starts (plugin.py,
# pytest_configure), so a test's first exploration imports neither.
FAULTLINE_MODULES = ("pytest_faultline.controller", "pytest_faultline.sched")
TOOL_MODULES = {
    "faultline": FAULTLINE_MODULES,
    "faultline baseline": FAULTLINE_MODULES,
    "interleave-test line": ("interleave_test",),
    "interleave-test opcode": ("interleave_test",),
    "frontrun random": ("frontrun",),
    "frontrun dpor": ("frontrun",),
}


def child(tool: str, bug_name: str, seed: int) -> int:
    """In a fresh process: the tool's import, the cold search, then WARM_REPEATS warm ones;
    one JSON line."""
    import importlib

    import pytest  # every test run has it

    del pytest
    bug = next(b for b in BUGS if b.name == bug_name)
    find, _ = FINDERS[tool]
    row: dict[str, Any] = {"tool": tool, "bug": bug_name, "seed": seed}
    try:
        started = _raw.monotonic()
        for module in TOOL_MODULES[tool]:
            importlib.import_module(module)
        row["import"] = _raw.monotonic() - started
        row["cold"], row["cold_schedules"] = find(bug, seed)
        warm = [find(bug, seed + 1000 * i) for i in range(1, WARM_REPEATS + 1)]
        row["warm"] = statistics.median(t for t, _ in warm)
        row["warm_schedules"] = statistics.median(n for _, n in warm)
    except SystemExit as exc:
        row["error"] = str(exc)
    except Exception as exc:  # a peer's own failure: reported, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(row), flush=True)
    return 0


# The interpreter the cold-start children run on (interleave-test needs 3.12+, and this
# benchmark is run by run_all.py with the project's Python): --child-python, or this variable.
CHILD_PYTHON_ENV = "FAULTLINE_BENCH_CHILD_PYTHON"
PROBE = (
    "import importlib.metadata as m, json, sys\n"
    "def v(d):\n"
    "    try:\n"
    "        return m.version(d)\n"
    "    except m.PackageNotFoundError:\n"
    "        return None\n"
    "print(json.dumps([sys.version.split()[0], list(sys.version_info[:2]),"
    " v('interleave-test'), v('frontrun')]))"
)


def available_tools(python: str) -> tuple[list[str], list[str], str]:
    """The tools to compare on ``python``, a line for each peer that is not compared, and the
    version of ``python``."""
    probe = subprocess.run(
        [python, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    version, info, interleave, front = json.loads(probe.stdout)
    tools, notes = ["faultline"], []
    if interleave is not None and tuple(info) >= INTERLEAVE_TEST_PYTHON:
        tools += ["interleave-test line", "interleave-test opcode"]
    elif tuple(info) < INTERLEAVE_TEST_PYTHON:
        notes.append(
            "interleave-test: not installable on this Python (its only release, 0.1.0, needs "
            f"3.12+; this is {version}); not compared (give --child-python a 3.12+ interpreter)"
        )
    else:
        notes.append("interleave-test: not installed (pip install interleave-test); not compared")
    if front is not None:
        tools += ["frontrun random", "frontrun dpor"]
    else:
        notes.append("frontrun: not installed (optional: pip install frontrun); not compared")
    return tools, notes, version


def _child_env(baseline: str | None = None) -> dict[str, str]:
    import pytest_faultline

    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent)
    src = baseline or str(Path(pytest_faultline.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, here, env.get("PYTHONPATH")) if p)
    # Bytecode caches as an installed package has them (a warm-up round writes ours).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(tool: str, bug: Bug, seed: int, env: dict[str, str], python: str) -> dict[str, Any]:
    script = [str(Path(__file__).resolve()), "--child", tool, bug.name, str(seed)]
    if FINDERS[tool][1]:  # frontrun's explore() runs only under its CLI
        command = [
            python,
            "-c",
            "import sys; from frontrun.cli import main; sys.exit(main(sys.argv[1:]))",
            python,
            *script,
        ]
    else:
        command = [python, *script]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=COLD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"killed after {COLD_TIMEOUT:g} s"}
    for line in out.splitlines():
        if line.startswith("{"):
            return dict(json.loads(line))
    return {"error": (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]}


def cold_start(seeds: int, python: str, baseline: str | None = None) -> list[str]:
    tools, notes, version = available_tools(python)
    env = _child_env()
    envs = {tool: env for tool in tools}
    if baseline is not None:
        tools.insert(1, "faultline baseline")
        envs["faultline baseline"] = _child_env(baseline)
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for seed in range(0, seeds + 1):  # seed 0: a warm-up round that writes bytecode caches
        for bug in BUGS:
            for tool in tools:
                row = run_child(tool, bug, seed, envs[tool], python)
                if seed > 0:
                    rows.setdefault((tool, bug.name), []).append(row)
    lines = [
        f"cold start on python {version}: fresh process per (tool, bug, seed), {seeds} seeds, "
        "tools alternating; ms to the first failing schedule, median (schedules, median)"
    ]
    imports: dict[str, float] = {}
    for tool in tools:
        measured = [
            r["import"] * 1000
            for (t, _), got in rows.items()
            if t == tool
            for r in got
            if "import" in r
        ]
        if measured:
            imports[tool] = statistics.median(measured)
    width = 24
    header = (
        f"{'bug':<26}"
        + "".join(f"{t:>{width}}" for t in tools)
        + f"{'cold/best peer':>16}{'incl. import':>14}"
        + (f"{'vs baseline':>13}" if baseline is not None else "")
    )
    lines += [header, "-" * len(header)]
    errors: list[str] = []
    for bug in BUGS:
        cells, colds = [], {}
        for tool in tools:
            got = rows.get((tool, bug.name), [])
            good = [r for r in got if "error" not in r]
            if len(good) < len(got) or not good:
                cells.append(f"{'not found':>{width}}")
                first = next((r["error"] for r in got if "error" in r), "no result")
                errors.append(f"  {bug.name}, {tool}: {first}")
                continue
            cold = statistics.median(r["cold"] for r in good) * 1000
            warm = statistics.median(r["warm"] for r in good) * 1000
            n = statistics.median(r["cold_schedules"] for r in good)
            colds[tool] = cold
            cells.append(f"{cold:>8.1f} / {warm:5.1f} ({n:>4.0f})".rjust(width))
        peers_cold = {k: v for k, v in colds.items() if not k.startswith("faultline")}
        ratio = with_import = "-"
        if "faultline" in colds and peers_cold:
            best = min(peers_cold, key=lambda k: peers_cold[k])
            ratio = f"{colds['faultline'] / peers_cold[best]:.2f}"
            ours = colds["faultline"] + imports["faultline"]
            theirs = min(v + imports[k] for k, v in peers_cold.items())
            with_import = f"{ours / theirs:.2f}"
        row = f"{bug.name:<26}" + "".join(cells) + f"{ratio:>16}{with_import:>14}"
        if baseline is not None:
            before = colds.get("faultline baseline")
            after = colds.get("faultline")
            row += f"{after / before:>13.2f}" if before and after else f"{'-':>13}"
        lines.append(row)
    lines += [
        "import ms (median): "
        + ", ".join(f"{tool} {imports[tool]:.1f}" for tool in tools if tool in imports),
        "cells: cold ms / warm ms (schedules until the failure, cold); cold/best peer: faultline",
        "cold / the fastest peer's cold on that bug (target <= 1; below 1: faultline is faster);",
        "incl. import: the same with each tool's import added (what a fresh test process pays)",
        *(
            ["vs baseline: faultline cold / the baseline checkout's cold (below 1: faster)"]
            if baseline is not None
            else []
        ),
        *errors,
        *notes,
    ]
    return lines


# -- the strategies on the same bugs ---------------------------------------------------------------


def strategies(seeds: int) -> list[str]:
    from pytest_faultline.exploring import DEFAULT_STRATEGY, STRATEGIES

    lines = [
        f"schedules until the first failure (median of {seeds} seeds; warm, in this process); "
        f"default strategy: {DEFAULT_STRATEGY}"
    ]
    header = f"{'bug':<26}" + "".join(f"{s:>10}" for s in STRATEGIES)
    lines += [header, "-" * len(header)]
    sums = dict.fromkeys(STRATEGIES, 0.0)
    for bug in BUGS:
        cells = []
        for strategy in STRATEGIES:
            # dfs does not depend on the seed: once is its median
            tries = 1 if strategy == "dfs" else seeds
            found = [_found_at(bug, seed, strategy)[1] for seed in range(1, tries + 1)]
            median = statistics.median(found)
            sums[strategy] += median
            cells.append(f"{median:>10.0f}")
        lines.append(f"{bug.name:<26}" + "".join(cells))
    lines.append(f"{'sum of medians':<26}" + "".join(f"{sums[s]:>10.0f}" for s in STRATEGIES))
    return lines


# -- what preempt="bytecode" costs on a module -----------------------------------------------------


class Account:
    def __init__(self) -> None:
        self.balance = 0
        self.history: list[int] = []
        self.lock = threading.Lock()

    def deposit(self, amount: int) -> None:
        with self.lock:
            self.balance += amount
            self.history.append(amount)


def busy_body() -> None:
    """Two threads, 200 locked deposits each, in this module (the one traced)."""
    account = Account()

    def work() -> None:
        for i in range(200):
            account.deposit(i)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert account.balance == 2 * sum(range(200))


def overhead(repeats: int) -> list[str]:
    modes: list[tuple[str, dict[str, Any]]] = [
        ("sync", {}),
        ("lines", {"preempt": "lines", "modules": [HERE]}),
        ("bytecode", {"preempt": "bytecode", "modules": [HERE]}),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in modes}
    points: dict[str, float] = {}
    for _ in range(repeats):  # alternating
        for name, options in modes:
            fl = new_faultline(1)
            try:
                result = fl.explore(busy_body, runs=5, strategy="random", **options)
            finally:
                fl.close()
            times[name].append(result.elapsed / result.schedules)
            points[name] = result.decisions / result.schedules
    base = statistics.median(times["sync"])
    lines = ["one run of 2 threads x 200 locked deposits (7 bytecodes of shared state each):"]
    for name, _ in modes:
        median = statistics.median(times[name])
        added = points[name] - points["sync"]
        per_point = f", {(median - base) / added * 1e6:5.1f} us per added point" if added else ""
        lines.append(
            f"  preempt={name + ':':<10} {median * 1000:7.1f} ms per run, "
            f"{points[name]:6.0f} decisions per run, {median / base:5.2f}x sync{per_point}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=9, help="runs per bug for the median")
    # 11: the schedules a tool needs vary with the seed (1-16 on these bugs), and a median of 5
    # fresh processes moved the ratio by 0.3-0.5 between two runs of the same scheduler.
    parser.add_argument("--cold-seeds", type=int, default=11, help="fresh processes per bug/tool")
    parser.add_argument(
        "--stress-cap", type=float, default=2.0, help="seconds a stress loop may try per attempt"
    )
    parser.add_argument("--stress-attempts", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="cold start and overhead only")
    parser.add_argument(
        "--child-python",
        default=os.environ.get(CHILD_PYTHON_ENV) or sys.executable,
        help=f"the interpreter of the cold-start processes (default: ${CHILD_PYTHON_ENV}, else "
        "this one); it needs pytest, freezegun and faker, and the peers to compare",
    )
    parser.add_argument(
        "--baseline-src",
        help="the src directory of another checkout: its cold start is measured alongside",
    )
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "BUG", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        tool, bug_name, seed = args.child
        return child(tool, bug_name, int(seed))
    print(f"python {sys.version.split()[0]}, switch interval {sys.getswitchinterval()} s")
    print()
    for line in cold_start(args.cold_seeds, args.child_python, args.baseline_src):
        print(line)
    print()
    for line in overhead(5):
        print(line)
    if args.quick:
        return 0
    print()
    for line in strategies(args.seeds):
        print(line)
    print()
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
