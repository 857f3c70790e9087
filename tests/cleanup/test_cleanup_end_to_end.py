"""End to end: the marker, the report, bad input, and nothing left held after a failing test."""

from __future__ import annotations

import json

import pytest

WORKER_APP = """
import queue, threading

RAN = []

class Registry:
    def __init__(self):
        self.work = queue.Queue()
        self.thread = threading.Thread(target=self.run, name="worker", daemon=True)
        self.thread.start()

    def run(self):
        while (item := self.work.get(timeout=20)) is not None:
            self.forget(item)

    def forget(self, name):
        RAN.append((name, threading.current_thread().name))

    def connect(self, name):
        return name

    def close(self):
        self.work.put(None)
        self.thread.join(5)
        assert not self.thread.is_alive()
"""


@pytest.fixture
def worker_app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(worker_app=WORKER_APP)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)


def test_nothing_is_left_held_after_a_failing_test(worker_app: pytest.Pytester) -> None:
    worker_app.makepyfile(
        """
        import threading
        import pytest
        import worker_app
        from pytest_faultline.cleanup import deferrals

        # Threads other plugins keep (pytest-rerunfailures' server) are there before the tests.
        BEFORE = set(threading.enumerate())

        @pytest.fixture
        def registry():
            r = worker_app.Registry()
            yield r
            # The held call was released when the body ended, before this teardown.
            assert worker_app.RAN == [("A", "worker")]
            r.close()

        @pytest.mark.faultline("delayed_cleanup", target="worker_app:Registry.forget")
        def test_fails_while_held(registry, faultline):
            registry.work.put("A")
            assert deferrals(faultline)[0].wait(1, timeout=5)
            assert worker_app.RAN == []
            assert False, "failing with the worker parked"

        def test_next_test_sees_nothing_held():
            assert worker_app.Registry.forget.__qualname__ == "Registry.forget"
            assert worker_app.Registry.forget.__module__ == "worker_app"
            assert "wrapper" not in repr(worker_app.Registry.__dict__["forget"])
            assert [t.name for t in threading.enumerate() if t not in BEFORE] == []
            r = worker_app.Registry()
            r.work.put("B")
            r.close()
            assert worker_app.RAN[-1] == ("B", "worker")
        """
    )
    result = run(worker_app, "--faultline-report=report.json")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*faultline (call)*",
            "*[[]worker] hold worker_app:Registry.forget: #1 Registry.forget('A') held "
            "(thread parked at the call)",
            "*[[]MainThread] release worker_app:Registry.forget: #1 Registry.forget('A') "
            "released by test end",
            "*[[]worker] ran worker_app:Registry.forget: #1 Registry.forget('A') returned on "
            "[[]worker]; window: held at * ms, released at * ms by test end",
        ]
    )
    report = json.loads((worker_app.path / "report.json").read_text())
    kinds = [e["kind"] for e in report["tests"][0]["events"]]
    assert kinds == ["scenario", "defer", "hold", "release", "ran"]


def test_a_release_that_never_comes_warns(worker_app: pytest.Pytester) -> None:
    worker_app.makepyfile(
        """
        import pytest
        import worker_app

        @pytest.mark.faultline(
            "delayed_cleanup", target="worker_app:Registry.forget", until="app.reused"
        )
        def test_until_never_reached():
            worker_app.Registry.forget(None, "A")  # on the test's thread: held, returns None
            assert worker_app.RAN == []
        """
    )
    result = run(worker_app)
    result.assert_outcomes(passed=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*FaultlineWarning: faultline: 1 call(s) to 'worker_app:Registry.forget' were still "
            "held when the test ended and ran then: #1 Registry.forget('A'). Their release "
            "(until 'app.reused') never came; check that the code reaches it, or advance the clock",
            "*UnreachedPointWarning: faultline: 'app.reused' was armed but never reached*",
        ]
    )


def test_held_calls_that_raise_or_are_cancelled_warn(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def close_session(name):
            return name

        def test_cancelled(faultline):
            deferral = faultline.defer(close_session)

            async def main():
                asyncio.create_task(close_session("A"))
                await asyncio.sleep(0)

            asyncio.run(main())
            (call,) = deferral.released
            assert isinstance(call.error, asyncio.CancelledError)

        def broken_cleanup(name):
            raise ValueError(name)

        def test_raises_when_released(faultline):
            deferral = faultline.defer(broken_cleanup)
            assert broken_cleanup("B") is None  # held: the caller goes on
            deferral.release()  # the error is not thrown at the releaser ...
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, warnings=2)
    module = "test_held_calls_that_raise_or_are_cancelled_warn"
    result.stdout.fnmatch_lines(
        [
            f"*FaultlineWarning: faultline: held call(s) to '{module}:close_session' raised when "
            "they ran: #1 close_session('A'): CancelledError()*",
            f"*FaultlineWarning: faultline: held call(s) to '{module}:broken_cleanup' raised "
            "when they ran: #1 broken_cleanup('B'): ValueError('B')*",
        ]
    )


def test_a_fault_inside_the_window_composes(worker_app: pytest.Pytester) -> None:
    """A fault on the ``until`` target during the window: the first reconnect fails, so the
    call stays held; the second one returns and releases it."""
    worker_app.makepyfile(
        """
        import pytest
        import worker_app

        def test_compose(faultline):
            deferral = faultline.defer(
                worker_app.Registry.forget, until=worker_app.Registry.connect
            )
            arming = faultline.arm(worker_app.Registry.connect, ConnectionResetError, times=1)
            registry = worker_app.Registry()
            try:
                registry.work.put("A")
                assert deferral.wait(1, timeout=5)
                with pytest.raises(ConnectionResetError):
                    registry.connect("B")
                assert worker_app.RAN == [] and len(deferral.pending) == 1
                registry.connect("B")
                assert worker_app.RAN == [("A", "worker")]
                assert arming.fired == 1
            finally:
                registry.close()
        """
    )
    run(worker_app).assert_outcomes(passed=1)


def test_scenario_params_are_checked(worker_app: pytest.Pytester) -> None:
    worker_app.makepyfile(
        """
        import pytest

        @pytest.mark.faultline("clock_jump", at="app.tick", seconds=0)
        def test_zero():
            pass

        @pytest.mark.faultline("delayed_cleanup", target="worker_app:Nope.forget")
        def test_missing():
            pass
        """
    )
    result = run(worker_app)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "ScenarioError: faultline scenario 'clock_jump': seconds must be a number > 0 (how far "
            "the clock jumps when 'app.tick' is reached), got 0 (in @pytest.mark.faultline on "
            "test_scenario_params_are_checked.py::test_zero)",
            "*TargetError: target 'worker_app:Nope.forget': 'worker_app' has no attribute 'Nope'",
        ]
    )
