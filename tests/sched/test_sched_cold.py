"""Cold start: the first exploration in a fresh process loads the scheduler and nothing it does
not use (timing lives in ``benchmarks/bench_sched.py``), and the default strategy is the one the
benchmark chose."""

from __future__ import annotations

import inspect
import json
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
