"""Cold start: the first exploration in a fresh process loads the scheduler and nothing it does
not use (timing lives in ``benchmarks/bench_sched.py``), and the default strategy is the one the
benchmark chose."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap

import pytest

from pytest_faultline.exploring import DEFAULT_STRATEGY, ExploreOptions

FIRST_EXPLORATION = textwrap.dedent(
    """
    import json, sys, threading
    from pytest_faultline.controller import Faultline

    def body():
        box = {"n": 0}
        lock = threading.Lock()

        def bump():
            with lock:
                n = box["n"]
            with lock:
                box["n"] = n + 1

        threads = [threading.Thread(target=bump) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box["n"] == 2

    fl = Faultline(seed=1, nodeid="cold")
    result = fl.explore(body, runs=50, raises=False)
    fl.close()
    print(json.dumps({"failed": result.failure is not None, "modules": sorted(sys.modules)}))
    """
)


def test_the_first_exploration_loads_only_what_it_uses() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FIRST_EXPLORATION],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["failed"]  # the lost update was found: the scheduler did run
    loaded = set(out["modules"])
    assert "pytest_faultline.sched.runtime" in loaded
    # asyncio (13 ms) came with the cleanup package; the lock-order watcher with lockorder;
    # pytest (0.1 s) with the settings and the report: this is plain code outside a test run.
    unused = {
        "asyncio",
        "pytest",
        "_pytest.config",
        "pluggy",
        "faker",
        "freezegun",
        "pytest_faultline.plugin",
        "pytest_faultline.registry",
        "pytest_faultline.cleanup",
        "pytest_faultline.lockorder.watch",
        "pytest_faultline.lockorder.graph",
        "pytest_faultline.lockorder.affinity",
    }
    assert loaded & unused == set()
    # The report of the failure is built on the failure, not imported before the first run.
    assert "pytest_faultline.sched.report" in loaded


@pytest.mark.parametrize("where", ["options", "scenario"])
def test_the_default_strategy_is_random(where: str) -> None:
    """It found the benchmark's bugs in the fewest schedules (bench_sched.py, strategies)."""
    assert DEFAULT_STRATEGY == "random"
    if where == "options":
        assert ExploreOptions().strategy == "random"
    else:
        from pytest_faultline.builtins.threads import thread_preemption

        signature = inspect.signature(thread_preemption)
        assert signature.parameters["strategy"].default == "random"


# What a lock is named after: the hand-written scan must say what the regular expression says.
ASSIGNED = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?::[^=]*)?=(?!=)")
LINES = [
    "lock = threading.Lock()",
    "    self._lock = threading.RLock()",
    "self._odb_lock: threading.Lock = threading.Lock()",
    "lock_a, lock_b = Lock(), Lock()",
    "x == Lock()",
    "x += 1",
    "Lock()",
    "with lock:",
    "a.b.c=Lock()",
    "ünïcode_lock = Lock()",
    "_private= Lock()",
    "9lives = 1",
    "name: int",
    "name: dict[str, int] == 3",
    "cond = Condition(lock=lock)",
    "\tq = queue.Queue()",
    "",
    "   ",
    "x=(y==z)",
    "f(a=1)",
]


@pytest.mark.parametrize("line", LINES)
def test_the_assigned_name_scan_matches_the_pattern(line: str) -> None:
    from pytest_faultline._sites import assigned_name

    match = ASSIGNED.match(line)
    assert assigned_name(line) == (match.group(1) if match else None)


def test_explore_options_are_an_immutable_value() -> None:
    """A plain class since it left dataclasses (import cost): equal by value, hashable,
    immutable, changed through replace(), copied and pickled whole."""
    import copy
    import pickle

    options = ExploreOptions(runs=5, modules=("json",))
    assert options == ExploreOptions(runs=5, modules=("json",))
    assert options != ExploreOptions(runs=6, modules=("json",))
    assert hash(options) == hash(ExploreOptions(runs=5, modules=("json",)))
    changed = options.replace(strategy="dfs")
    assert (changed.strategy, changed.runs, options.strategy) == ("dfs", 5, "random")
    with pytest.raises(AttributeError, match=r"immutable: cannot set 'runs'; use options\.replace"):
        options.runs = 3
    assert copy.deepcopy(options) == options
    assert pickle.loads(pickle.dumps(options)) == options
    assert "runs=5" in repr(options)
