"""The value classes loaded at every pytest start are written out, not ``@dataclass`` (import
cost): each behaves as the dataclass it replaced, built here with ``make_dataclass``."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_faultline import actions
from pytest_faultline._context import EventKind, FaultEvent
from pytest_faultline._record import Record
from pytest_faultline.decider import ReplayToken
from pytest_faultline.errors import FaultlineError
from pytest_faultline.registry import Param, Scenario
from pytest_faultline.settings import OptionSpec, Settings
from pytest_faultline.targets import CallTarget

MISSING = dataclasses.MISSING


def _scenario_func(faultline: object) -> None:
    """A scenario function to put in a Scenario."""


def _reference(cls: type[Record], frozen: bool) -> type[Any]:
    """The dataclass ``cls`` was: its fields, annotations, defaults and private fields."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    specs: list[tuple[str, Any, Any]] = []
    for name in cls.__match_args__:
        annotation = inspect.get_annotations(cls)[name]
        if cls is ReplayToken and name == "choices":
            specs.append((name, "dict[str, list[Choice]]", dataclasses.field(default_factory=dict)))
        else:
            specs.append((name, annotation, dataclasses.field(default=defaults.get(name, MISSING))))
    if cls is actions.Stall:
        specs += [
            (name, Any, dataclasses.field(default_factory=factory, init=False, repr=False))
            for name, factory in (("_released", object), ("_waiters", list), ("_lock", object))
        ]
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=frozen)


# (class, frozen, two different sets of constructor arguments)
CASES: list[tuple[type[Record], bool, tuple[Any, ...], tuple[Any, ...]]] = [
    (FaultEvent, True, (EventKind.RAISE, "db:write", "MainThread", "boom", 0.5), ()),
    (ReplayToken, True, (7, "0a1b2c3d", {"sched": [1, 0]}), (7, "0a1b2c3d")),
    (OptionSpec, True, ("seed", "--faultline-seed", "faultline_seed", None, int, "N", "h"), ()),
    (Settings, True, (1, "given"), (2, "random", ("reset",), None, 5, 1.5, "toxiproxy")),
    (Param, True, ("runs", 100, int), ("seed", inspect.Parameter.empty, None)),
    (Scenario, True, ("s", _scenario_func, (), "doc"), ("t", _scenario_func, (), "")),
    (CallTarget, False, ("m:f", sys, "f", len, False), ("m:g", Path, "g", None, True)),
    (actions.Hit, False, ("t", (1,), {"k": 2}, 1, "MainThread", None, None), ()),
    (actions.Raise, False, (), (OSError(104, "reset"),)),
    (actions.Raise, False, (ConnectionResetError,), ()),
    (actions.Delay, False, (0.25,), (0,)),
    (actions.Return, False, (), ("cached",)),
    (actions.Call, False, (print,), (len,)),
    (actions.Stall, False, (), (2.0,)),
    (actions.Preempt, False, (), ()),
    (actions.Cancel, False, (), ()),
    (actions.Disconnect, False, (), ()),
    (actions.Watch, False, (), ()),
]


@pytest.mark.parametrize(
    ("cls", "frozen", "args", "other"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_a_written_out_class_behaves_as_its_dataclass(
    cls: type[Record], frozen: bool, args: tuple[Any, ...], other: tuple[Any, ...]
) -> None:
    ref = _reference(cls, frozen)
    new, ref_new = cls(*args), ref(*args)

    assert repr(new) == repr(ref_new)
    assert cls.__match_args__ == ref.__match_args__
    ours = inspect.signature(cls).parameters.values()
    theirs = inspect.signature(ref).parameters.values()
    shape = [(p.name, p.kind, p.annotation, p.default) for p in theirs]
    if cls is ReplayToken:  # a default_factory shows as <factory>; None stands for it here
        shape[-1] = ("choices", shape[-1][1], "dict[str, list[Choice]] | None", None)
    assert [(p.name, p.kind, p.annotation, p.default) for p in ours] == shape

    # Equal to a twin exactly when the dataclass was (a Stall has its own event: never).
    assert (new == cls(*args)) == (ref_new == ref(*args))
    assert new != SimpleNamespace(**{n: getattr(new, n) for n in cls.__match_args__})
    if other:
        assert cls(*other) != new
        assert repr(cls(*other)) == repr(ref(*other))
    if not frozen:
        assert cls.__hash__ is None
        assert ref.__hash__ is None
        return

    if cls is not ReplayToken:  # its dict of choices is unhashable, as it was: tested below
        assert hash(new) == hash(ref_new)
    name = cls.__match_args__[0]
    with pytest.raises(dataclasses.FrozenInstanceError) as ours_error:
        setattr(new, name, 1)
    with pytest.raises(dataclasses.FrozenInstanceError) as theirs_error:
        setattr(ref_new, name, 1)
    assert str(ours_error.value) == str(theirs_error.value)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field"):
        delattr(new, name)
    assert copy.copy(new) == new
    assert copy.deepcopy(new) == new
    if cls not in (OptionSpec, Scenario):  # functions of a test module: not importable by name
        assert pickle.loads(pickle.dumps(new)) == new
    changed = new.replace(**{name: args[0]})  # type: ignore[attr-defined]
    assert changed == new
    assert changed is not new
    assert repr(dataclasses.replace(ref_new, **{name: "x"})) == repr(
        new.replace(**{name: "x"})  # type: ignore[attr-defined]
    )


def test_a_replay_token_is_unhashable_as_its_dataclass_was() -> None:
    # Its choices are a dict: a frozen dataclass hashed the field tuple and failed the same way.
    with pytest.raises(TypeError, match="unhashable type: 'dict'"):
        hash(ReplayToken(1, "0a1b2c3d"))
    assert ReplayToken(1, "0a1b2c3d").choices == {}


def test_checks_of_the_actions_arguments_still_run() -> None:
    with pytest.raises(FaultlineError, match="Raise\\(\\) needs an exception"):
        actions.Raise(42)  # type: ignore[arg-type]
    with pytest.raises(FaultlineError, match="Delay\\(\\) needs seconds >= 0"):
        actions.Delay(-1)
    with pytest.raises(FaultlineError, match="Call\\(\\) needs a callable"):
        actions.Call(3)  # type: ignore[arg-type]
    with pytest.raises(FaultlineError, match="Stall\\(\\) needs a timeout > 0"):
        actions.Stall(0)


def test_an_action_of_the_users_own_may_be_a_dataclass() -> None:
    @dataclasses.dataclass
    class Garbage(actions.Action):
        junk: bytes = b"\x00"
        kind = "garbage"

    action = actions.as_action(Garbage)
    assert isinstance(action, Garbage)
    assert action.junk == b"\x00"
    action.junk = b"?"  # a __dict__ of its own: Action's empty __slots__ do not get in the way
    assert repr(action).endswith("Garbage(junk=b'?')")
    assert action == Garbage(b"?")
    assert action != Garbage()
    assert actions.as_action(actions.Preempt) == actions.Preempt()


def test_importing_the_plugin_builds_no_dataclass() -> None:
    code = (
        "import dataclasses\n"
        "import pytest\n"
        "built = []\n"
        "process = dataclasses._process_class\n"
        "def spy(cls, *args, **kwargs):\n"
        "    built.append(f'{cls.__module__}.{cls.__qualname__}')\n"
        "    return process(cls, *args, **kwargs)\n"
        "dataclasses._process_class = spy\n"
        "import pytest_faultline.plugin\n"
        "print(built)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
