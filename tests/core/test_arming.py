"""faultline.arm(): targets, actions, and when they fire."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pytest_faultline import actions, point
from pytest_faultline.controller import Faultline
from pytest_faultline.errors import FaultlineError, InjectedFault, TargetError

from . import targets_sample as sample

MODULE = "tests.core.targets_sample"


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=11, nodeid="tests/core/test_arming.py::x")
    yield controller
    controller.close()


def test_times_and_after_select_which_hits_fire(fl: Faultline) -> None:
    fl.arm("p.window", ValueError, after=2, times=2)
    outcomes = []
    for _ in range(6):
        try:
            point("p.window")
            outcomes.append("ok")
        except ValueError:
            outcomes.append("fault")
    assert outcomes == ["ok", "ok", "fault", "fault", "ok", "ok"]
    assert fl.hits("p.window") == 6
    assert [e.kind for e in fl.events] == ["raise", "raise"]


def test_probability_draws_come_from_the_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        c = Faultline(seed=seed, nodeid="t")
        c.arm("p.coin", actions.Return("hit"), probability=0.5)
        try:
            return [point("p.coin") == "hit" for _ in range(64)]
        finally:
            c.close()

    assert pattern(5) == pattern(5)
    assert pattern(5) != pattern(6)
    assert 10 < sum(pattern(5)) < 54


def test_module_function_is_wrapped_and_restored(fl: Faultline) -> None:
    original = sample.send
    fl.arm(f"{MODULE}:send", ConnectionResetError, times=1)
    with pytest.raises(ConnectionResetError, match="fault injected at"):
        sample.send(b"abc")
    assert sample.send(b"abc") == 3
    fl.close()
    assert sample.send is original


def test_method_static_class_and_inherited_targets(fl: Faultline) -> None:
    raw_static = vars(sample.Conn)["version"]
    raw_class = vars(sample.Conn)["make"]
    fl.arm(f"{MODULE}:Conn.recycle", actions.Return("held"))
    fl.arm(f"{MODULE}:Conn.version", actions.Return(99))
    fl.arm(f"{MODULE}:Conn.make", actions.Return("made"))
    fl.arm(f"{MODULE}:Conn.close", actions.Return("not closed"))
    conn = sample.Conn()
    assert conn.recycle("drop") == "held"
    assert sample.Conn.version() == 99
    made: object = sample.Conn.make()  # armed: the action's value, not a Conn
    assert made == "made"
    assert conn.close() == "not closed"
    assert sample.Base().close() == "closed"  # the base class is untouched
    fl.close()
    assert vars(sample.Conn)["version"] is raw_static
    assert vars(sample.Conn)["make"] is raw_class
    assert "close" not in vars(sample.Conn)  # inherited: the override is removed, not copied
    assert conn.recycle("drop") == "recycled: drop"


def test_call_action_gets_the_arguments_and_the_call_goes_on(fl: Faultline) -> None:
    seen = []
    fl.arm(sample.Conn.recycle, lambda *args: seen.append(args))  # found by module and qualname
    conn = sample.Conn()
    assert conn.recycle("idle") == "recycled: idle"
    assert seen == [(conn, "idle")]


def test_callable_with_all_arguments(fl: Faultline) -> None:
    seen = []
    fl.arm(f"{MODULE}:Conn.recycle", lambda self, reason: seen.append(reason))
    sample.Conn().recycle("late")
    assert seen == ["late"]


def test_default_raise_is_injected_fault(fl: Faultline) -> None:
    fl.arm("p.default", actions.Raise())
    with pytest.raises(InjectedFault, match=r"fault injected at 'p\.default' \(hit 1\)"):
        point("p.default")


def test_stall_holds_a_thread_until_released(fl: Faultline) -> None:
    arming = fl.arm("p.stall", actions.Stall(timeout=5))
    passed = threading.Event()

    def worker() -> None:
        point("p.stall")
        passed.set()

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert arming.wait(1, timeout=5), "the worker never reached the point"
        assert not passed.is_set()
        arming.release()
        assert passed.wait(5)
    finally:
        arming.release()
        t.join(5)
    assert not t.is_alive()


def test_stall_bound_lets_the_thread_go_on_and_says_so(fl: Faultline) -> None:
    fl.arm("p.bound", actions.Stall(timeout=0.01))
    point("p.bound")
    assert [e.kind for e in fl.events] == ["stall", "stall-timeout"]


def test_teardown_releases_stalled_threads_before_undoing(fl: Faultline) -> None:
    arming = fl.arm("p.held", actions.Stall(timeout=30))
    t = threading.Thread(target=point, args=("p.held",))
    t.start()
    assert arming.wait(1, timeout=5)
    fl.close()
    t.join(5)
    assert not t.is_alive()


def test_delay_uses_time_sleep(fl: Faultline, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    fl.arm("p.delay", actions.Delay(0.25))
    point("p.delay")
    assert slept == [0.25]


def test_preempt_and_disconnect_run_registered_handlers(fl: Faultline) -> None:
    calls = []
    fl.add_handler("disconnect", lambda hit: calls.append(("disconnect", hit and hit.target)))
    fl.arm("p.net", actions.Disconnect())
    fl.arm("p.sched", actions.Preempt())
    point("p.net")
    point("p.sched")  # no preempt handler: recorded only
    assert calls == [("disconnect", "p.net")]
    assert [e.kind for e in fl.events] == ["disconnect", "preempt"]


def test_several_armings_on_one_target_fire_in_order(fl: Faultline) -> None:
    order = []
    fl.arm("p.multi", lambda: order.append("first"))
    fl.arm("p.multi", actions.Return("second"))
    fl.arm("p.multi", lambda: order.append("never"))
    assert point("p.multi") == "second"
    assert order == ["first"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule_xyz:f", "module 'nosuchmodule_xyz' not found"),
        (f"{MODULE}:nope", "has no attribute 'nope'"),
        (f"{MODULE}:Conn.recycel", "has no attribute 'recycel'"),
        (f"{MODULE}:Missing.recycle", "has no attribute 'Missing'"),
        (f"{MODULE}:Conn.peer", "is a property"),
        (f"{MODULE}:Conn", "is a class"),
        (f"{MODULE}:", "is not of the form"),
        ("socket:socket.__init__.x", "not a class or module"),
    ],
)
def test_bad_targets_say_what_is_wrong(fl: Faultline, target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message.replace(".", r"\.").replace("(", r"\(")):
        fl.arm(target, ValueError)


def test_builtin_type_cannot_be_wrapped(fl: Faultline) -> None:
    with pytest.raises(TargetError, match="Built-in types cannot be patched"):
        fl.arm("builtins:dict.get", ValueError)


@pytest.mark.parametrize("action", [42, "raise", None, int])
def test_unknown_actions_are_refused(fl: Faultline, action: object) -> None:
    with pytest.raises(FaultlineError, match=r"cannot arm .*: an action is an exception class"):
        fl.arm("p.bad", action)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"times": 0}, "times must be a whole number >= 1"),
        ({"after": -1}, "after must be a whole number >= 0"),
        ({"probability": 1.5}, "probability must be between 0.0 and 1.0"),
    ],
)
def test_bad_arm_parameters(fl: Faultline, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FaultlineError, match=message):
        fl.arm("p.params", ValueError, **kwargs)  # type: ignore[arg-type]


def test_hits_of_an_unarmed_target_explains_itself(fl: Faultline) -> None:
    with pytest.raises(FaultlineError, match="not armed in this test"):
        fl.hits("p.never")


def test_unreached_target_warns_and_strict_fails() -> None:
    c = Faultline(seed=1, nodeid="t::loose")
    c.arm("p.typo", ValueError)
    with pytest.warns(Warning, match="'p.typo' was armed but never reached"):
        c.close()
    c = Faultline(seed=1, nodeid="t::strict")
    c.arm("p.typo2", ValueError, strict=True)
    with pytest.raises(FaultlineError, match=r"never reached \(strict\): 'p\.typo2'"):
        c.close()


def test_undo_runs_in_reverse_and_survives_failures_and_interrupts() -> None:
    c = Faultline(seed=1, nodeid="t")
    order: list[str] = []
    c.undo.push(lambda: order.append("first"))

    def interrupt() -> None:
        order.append("interrupt")
        raise KeyboardInterrupt

    c.undo.push(interrupt)
    c.undo.push(lambda: order.append("last"))
    with pytest.raises(KeyboardInterrupt):
        c.close()
    assert order == ["last", "interrupt", "first"]


def test_closed_controller_refuses_new_armings() -> None:
    c = Faultline(seed=1, nodeid="t")
    c.close()
    with pytest.raises(FaultlineError, match="closed"):
        c.arm("p.late", ValueError)
