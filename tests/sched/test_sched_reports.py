"""Reports point at the right place, and a replay cannot pass by accident."""

from __future__ import annotations

import re
import threading

import pytest

from pytest_faultline import DeadlockError, FaultlineError, FaultlineWarning
from pytest_faultline.controller import Faultline
from pytest_faultline.decider import ReplayToken

HERE = __name__


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items = {"a": "stale", "b": "fresh", "c": "stale"}

    def purge(self) -> None:
        with self.lock:
            stale = [k for k, v in self.items.items() if v == "stale"]
        for key in stale:
            with self.lock:
                del self.items[key]  # KeyError when the other thread deleted it first


def purge_twice() -> None:
    registry = Registry()
    threads = [threading.Thread(target=registry.purge, name=f"purger-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


def test_the_report_names_the_raising_thread_marks_preemptions_and_uses_rootdir_paths(
    faultline: Faultline,
) -> None:
    with pytest.raises(KeyError) as info:
        faultline.explore(purge_twice, runs=200)
    report = notes(info.value)
    assert "raised in T1 (purger-0) at tests/sched/test_sched_reports.py:" in report or (
        "raised in T2 (purger-1) at tests/sched/test_sched_reports.py:" in report
    ), report
    assert ">> preempted" in report, report
    assert "tests/sched/test_sched_reports.py:" in report.split("step |", 1)[1], report


def test_a_blocked_acquire_is_shown_as_blocked(faultline: Faultline) -> None:
    def body() -> None:
        a, b = threading.Lock(), threading.Lock()

        def one() -> None:
            with a, b:
                pass

        def two() -> None:
            with b, a:
                pass

        ts = [threading.Thread(target=f) for f in (one, two)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    with pytest.raises(DeadlockError) as info:
        faultline.explore(body, runs=200)
    report = notes(info.value)
    # (``a (L1)`` on 3.11+, where the column tells the names of ``a, b = ...`` apart; ``L1``.)
    assert re.search(r"acquire \(blocked\) (a |b )?\(?L[12]", report), report


def _failing_token(faultline: Faultline, **options: object) -> str:
    result = faultline.explore(purge_twice, runs=200, raises=False, **options)
    assert isinstance(result.failure, KeyError)
    assert result.token is not None
    return result.token


def test_a_token_replayed_with_other_options_is_a_divergence(faultline: Faultline) -> None:
    token = _failing_token(faultline, preempt="lines", modules=[HERE])
    with pytest.raises((FaultlineError, KeyError)) as info:
        faultline.replay(purge_twice, token)  # preempt="sync": not what the token recorded
    text = str(info.value) + notes(info.value)
    assert "recorded with other scheduling options (preempt='lines'" in text, text


def test_a_replay_that_leaves_recorded_choices_unused_does_not_pass(faultline: Faultline) -> None:
    token = ReplayToken.decode(_failing_token(faultline))
    token.choices["sched"] = [*token.choices["sched"], 1, 1, 1]  # a longer schedule than the code

    def fixed() -> None:  # no thread, no choice: every recorded choice is left unused
        pass

    with pytest.raises(FaultlineError, match=r"recorded choice\(s\) of stream 'sched' unused"):
        faultline.replay(fixed, token.encode())


def test_the_same_options_replay_without_divergence(faultline: Faultline) -> None:
    token = _failing_token(faultline, preempt="lines", modules=[HERE])
    with pytest.raises(KeyError) as info:
        faultline.explore(purge_twice, token=token, preempt="lines", modules=[HERE])
    assert "diverged" not in notes(info.value)


def test_unbounded_dfs_that_cannot_finish_warns(faultline: Faultline) -> None:
    def body() -> None:
        lock = threading.Lock()

        def work() -> None:
            for _ in range(4):
                with lock:
                    pass

        ts = [threading.Thread(target=work) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    with pytest.warns(FaultlineWarning, match=r"dfs without max_preemptions covered 5 schedules"):
        result = faultline.explore(body, runs=5, strategy="dfs")
    assert result.passed
    assert not result.exhausted
    assert faultline.explore(body, runs=5000, strategy="dfs", max_preemptions=1).exhausted


CACHED = """
import threading

import pytest


class Box:
    def __init__(self):
        self.lock = threading.Lock()
        self.value = 0

    def bump(self):
        with self.lock:
            current = self.value
        with self.lock:
            self.value = current + 1


@pytest.mark.faultline("thread_preemption", runs=200)
def test_bumps():
    box = Box()
    threads = [threading.Thread(target=box.bump) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box.value == 2
"""


def test_a_token_replayed_from_the_cache_is_announced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cached=CACHED)
    first = pytester.runpytest("-p", "no:randomly")
    first.assert_outcomes(failed=1)
    again = pytester.runpytest("-p", "no:randomly")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(
        [
            "faultline: replaying the cached token of 1 earlier failing test(s) first*",
            "*faultline: the schedule replayed from pytest's cache failed*",
        ]
    )
