"""Cold start: the first exploration in a fresh process loads the scheduler and nothing it does
not use (timing lives in ``benchmarks/bench_sched.py``), and the default strategy is the one the
benchmark chose."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pytest_faultline.controller import Faultline
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


GRACE = textwrap.dedent(
    """
    import json, sys, threading
    from pytest_faultline.controller import Faultline
    from pytest_faultline.sched import runtime

    graces = []
    real = runtime.Scheduler._grace

    def spy(self):
        graces.append(real(self))
        return graces[-1]

    runtime.Scheduler._grace = spy
    release = threading.Event()  # made before any run: a real event
    if sys.argv[1] == "outsider":  # a thread outside the run that could release something
        outsider = threading.Thread(target=release.wait, args=(30,))
        outsider.start()

    def body():
        first, second = threading.Lock(), threading.Lock()

        def forward():
            with first, second:
                pass

        def backward():
            with second, first:
                pass

        threads = [threading.Thread(target=forward), threading.Thread(target=backward)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    fl = Faultline(seed=3, nodeid="grace")
    result = fl.explore(body, runs=200, raises=False, shrink_failures=False)
    fl.close()
    release.set()
    print(json.dumps({"failure": type(result.failure).__name__, "graces": sorted(set(graces))}))
    """
)


@pytest.mark.parametrize("who", ["alone", "outsider"])
def test_a_deadlock_is_final_at_once_when_no_other_thread_could_end_it(who: str) -> None:
    """Every thread of the run blocked and no other Python thread alive: nothing can release
    them, so the report does not wait the grace (2 ms per deadlocked schedule). With another
    thread alive (it might release what they wait for) the grace is still given."""
    from pytest_faultline.sched.runtime import DEADLOCK_GRACE_S

    done = subprocess.run(
        [sys.executable, "-c", GRACE, who], capture_output=True, text=True, timeout=60, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["failure"] == "DeadlockError"
    assert out["graces"] == ([0.0] if who == "alone" else [DEADLOCK_GRACE_S])


def _two_threads(target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _lost_update() -> None:
    box = {"n": 0}

    def bump() -> None:
        n = box["n"]
        box["n"] = n + 1

    _two_threads(bump)
    assert box["n"] == 2, "lost update"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_lines_mode_instruments_once_per_exploration(
    faultline: Faultline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run used to claim a ``sys.monitoring`` tool, set its events and call
    ``restart_events()``, so every line of every module it passed fired and was disabled again
    (a third of a run's cost). Now the runs of one exploration share the hook and keep what they
    disabled; the exploration's end frees the tool and re-enables what was disabled, so nothing
    outlives it (another tool may take the id)."""
    from pytest_faultline.sched import lines

    bytecode_app = importlib.import_module("bytecode_app")  # beside this module
    restarts: list[object] = []
    monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 (3.12+; mypy runs on 3.11 too)
    real = monitoring.restart_events
    monkeypatch.setattr(monitoring, "restart_events", lambda: restarts.append(real()))
    claimed: list[int] = []
    claim = lines.claim_tool

    def counted_claim(mode: str) -> int:
        claimed.append(claim(mode))
        return claimed[-1]

    monkeypatch.setattr(lines, "claim_tool", counted_claim)

    def body() -> None:  # lines of this module run, and are disabled: not in modules=
        _two_threads(bytecode_app.Hits().locked_bump)

    result = faultline.explore(body, runs=20, preempt="lines", modules=[bytecode_app.__name__])
    assert result.schedules == 20
    assert len(restarts) == 2  # the first run's install, and the end of the exploration
    # One sys.monitoring tool for the whole exploration (not one per run), free at its end.
    assert len(claimed) == 1
    assert monitoring.get_tool(claimed[0]) is None
    # The next exploration traces this module: its lines fire again, and the race is found.
    found = faultline.explore(
        _lost_update, runs=200, preempt="lines", modules=[__name__], raises=False
    )
    assert isinstance(found.failure, AssertionError)


def test_the_plugin_loads_the_scheduler_when_pytest_starts(pytester: pytest.Pytester) -> None:
    """A test's first exploration does not import the scheduler inside its own time: the plugin
    loaded it at start, with or without pytest-asyncio (whose integration loads it too)."""
    pytester.makepyfile(
        """
        import sys

        def test_loaded_before_any_exploration():
            assert "pytest_faultline.sched.explore" in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
