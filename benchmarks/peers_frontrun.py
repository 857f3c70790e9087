"""frontrun on the classic bugs of ``bench_sched.py``: the same code, found with frontrun's own API.

``bench_sched.py`` starts this script under frontrun's CLI (``frontrun python ...``), the way
frontrun documents for scripts: its ``explore()`` refuses to run without ``FRONTRUN_ACTIVE``. It
prints one JSON object per (bug, strategy) on stdout, which ``bench_sched.py`` tabulates beside
faultline. It can also be run by hand:

    PYTHONPATH=src frontrun python benchmarks/peers_frontrun.py [--seeds N]

Each bug is given to ``frontrun.explore`` as ``setup`` (build the bug: its threads and its
check), one worker per thread, and an ``invariant`` that runs the check. Two strategies:
``dpor`` (frontrun's default: systematic, deterministic, so repeated only for a median time) and
``random`` (random opcode-level schedules, one seed per repetition). Every call is bounded
(``total_timeout``, ``timeout_per_run``, ``deadlock_timeout``, a cap on executions/attempts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

# a script's own directory is first on sys.path, so this is benchmarks/bench_sched.py
import frontrun
from bench_sched import BUGS, Bug, Check, Targets
from frontrun import FrontrunInternalError, InconclusiveExploration

STRATEGIES = ("dpor", "random")
CAP = 1_000  # executions (dpor) or attempts (random) per search
TOTAL_TIMEOUT = 2.0  # seconds per search
RUN_TIMEOUT = 1.0  # seconds per execution: a stuck thread costs this much, once
# frontrun's classification of a worker exception: these are its own, not the bug's.
OWN_ERRORS = (FrontrunInternalError, InconclusiveExploration)


def search(bug: Bug, strategy: str, seed: int) -> dict[str, Any]:
    """One bounded frontrun search for ``bug``: found or not, seconds, schedules, verdict."""
    executions = 0

    def setup() -> tuple[Targets, Check]:
        nonlocal executions
        executions += 1  # one setup per execution: counts schedules even when explore() raises
        return bug.make()

    def worker(index: int) -> Callable[[tuple[Targets, Check]], None]:
        def run(state: tuple[Targets, Check]) -> None:
            state[0][index]()

        return run

    def invariant(state: tuple[Targets, Check]) -> bool:
        state[1]()  # frontrun counts an AssertionError from the invariant as a violation
        return True

    options: dict[str, Any] = {
        "strategy": strategy,
        "reproduce_on_failure": 0,  # time to find, as faultline's found_after (no re-runs)
        "total_timeout": TOTAL_TIMEOUT,
        "timeout_per_run": RUN_TIMEOUT,
        "deadlock_timeout": RUN_TIMEOUT,
    }
    if strategy == "dpor":
        options["max_executions"] = CAP
    else:
        options.update(max_attempts=CAP, seed=seed)
    workers = [worker(i) for i in range(len(bug.make()[0]))]
    started = time.perf_counter()
    try:
        result = frontrun.explore(setup=setup, workers=workers, invariant=invariant, **options)
    except OWN_ERRORS as exc:
        seconds = time.perf_counter() - started
        return _row(False, seconds, executions, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # dpor re-raises a worker's exception: that is the bug, found
        seconds = time.perf_counter() - started
        return _row(True, seconds, executions, f"raised {type(exc).__name__} from a worker")
    seconds = time.perf_counter() - started
    schedules = result.num_explored or executions
    if result.property_holds is False:
        first = (result.explanation or "invariant violated").strip().splitlines()[0]
        return _row(True, seconds, schedules, first)
    if result.property_holds is None:
        return _row(False, seconds, schedules, f"inconclusive: {result.inconclusive_reason}")
    return _row(False, seconds, schedules, "no failure reported")


def _row(found: bool, seconds: float, schedules: int, verdict: str) -> dict[str, Any]:
    return {"found": found, "seconds": seconds, "schedules": schedules, "verdict": verdict}


def first_sentence(text: str) -> str:
    """frontrun's messages go on to advice; the first sentence says what happened."""
    head, dot, _ = text.partition(". ")
    return head + dot.strip()


def measure(bug: Bug, strategy: str, seeds: int) -> dict[str, Any]:
    """Repeat the search (seeds 1..N); stop repeating once one search does not find the bug."""
    runs: list[dict[str, Any]] = []
    for seed in range(1, seeds + 1):
        runs.append(search(bug, strategy, seed))
        if not runs[-1]["found"]:
            break  # a bug it cannot report costs a timeout each time; once says enough
    hits = [r for r in runs if r["found"]]
    summary: dict[str, Any] = {
        "bug": bug.name,
        "strategy": strategy,
        "runs": len(runs),
        "found": len(hits),
        "verdict": first_sentence((runs[-1] if len(hits) < len(runs) else runs[0])["verdict"]),
    }
    if len(hits) == len(runs):
        summary["median_seconds"] = statistics.median(r["seconds"] for r in hits)
        summary["median_schedules"] = statistics.median(r["schedules"] for r in hits)
    else:
        summary["seconds"] = runs[-1]["seconds"]
        summary["schedules"] = runs[-1]["schedules"]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=9, help="searches per bug and strategy")
    args = parser.parse_args(argv)
    print(json.dumps({"frontrun": frontrun.__version__}), flush=True)
    for bug in BUGS:
        for strategy in STRATEGIES:
            print(json.dumps(measure(bug, strategy, args.seeds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
