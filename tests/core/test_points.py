"""Fault points: disarmed they do nothing; armed they act; the observer sees every point."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from pytest_faultline import _points, actions, point
from pytest_faultline.controller import Faultline


def test_disarmed_point_returns_none_and_arms_nothing() -> None:
    assert point("nowhere", key=1) is None
    assert "nowhere" not in _points.armed_names()


def test_importing_point_does_not_import_pytest() -> None:
    code = (
        "import sys\n"
        "from pytest_faultline import point\n"
        "point('x')\n"
        "print('pytest' in sys.modules, '_pytest' in sys.modules, 'faker' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_armed_point_returns_the_action_value_and_disarms_after_close() -> None:
    fl = Faultline(seed=1, nodeid="t")
    fl.arm("p.ret", actions.Return("skipped"))
    assert point("p.ret") == "skipped"
    fl.close()
    assert point("p.ret") is None
    assert "p.ret" not in _points.armed_names()


def test_observer_sees_every_point_and_is_removed() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    previous = _points.set_observer(lambda name, ctx: seen.append((name, ctx)))
    try:
        point("a", n=1)
        point("b")
    finally:
        _points.set_observer(previous)
    point("c")
    assert seen == [("a", {"n": 1}), ("b", {})]
    assert point.__code__ is _points._PLAIN_CODE


def test_point_context_reaches_a_call_action() -> None:
    fl = Faultline(seed=1, nodeid="t")
    got: list[dict[str, Any]] = []
    try:
        fl.arm("p.ctx", lambda **ctx: got.append(ctx))
        point("p.ctx", cid=7, user="ann")
    finally:
        fl.close()
    assert got == [{"cid": 7, "user": "ann"}]


def test_raise_instance_is_raised_afresh_each_hit() -> None:
    fl = Faultline(seed=1, nodeid="t")
    try:
        fl.arm("p.raise", OSError(104, "reset"))
        for _ in range(3):
            with pytest.raises(OSError, match="reset") as info:
                point("p.raise")
            # A fresh copy per hit: the traceback does not grow across hits.
            assert len(list(_walk(info.value.__traceback__))) < 10
    finally:
        fl.close()


def _walk(tb: Any) -> Any:
    while tb is not None:
        yield tb
        tb = tb.tb_next
