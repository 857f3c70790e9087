"""The dependency rule and the context protocol (DESIGN.md, "Architecture")."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from pytest_faultline import EventKind, Faultline, point
from pytest_faultline._context import FaultContext, ServiceKey, format_event
from pytest_faultline.decider import Decider

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "pytest_faultline"
SUBSYSTEMS = ("net", "sched", "cleanup", "lockorder", "aio", "sweep")


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, as absolute dotted names (TYPE_CHECKING ones too)."""
    package = "pytest_faultline." + ".".join(path.relative_to(PACKAGE).parent.parts)
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rstrip(".").split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_no_subsystem_imports_the_controller() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): name
        for sub in SUBSYSTEMS
        for path in sorted((PACKAGE / sub).rglob("*.py"))
        for name in _imports(path)
        if name == "pytest_faultline.controller" or name.startswith("pytest_faultline.controller.")
    }
    assert offenders == {}
    # The check sees relative imports (it would have caught the first wave's).
    assert "pytest_faultline.controller" in _imports(PACKAGE / "fixtures.py")


def test_the_controller_is_a_fault_context() -> None:
    faultline = Faultline(seed=7, nodeid="t.py::test")
    context: FaultContext = faultline  # checked by mypy --strict on this file
    assert context.nodeid == "t.py::test"
    assert context.settings.seed == 7
    faultline.close()


def test_use_decider_swaps_draws_and_always_restores() -> None:
    faultline = Faultline(seed=7)
    own = faultline.decider
    other = Decider(99)
    expected = Decider(99).stream("s").choice(1_000_000)
    with faultline.use_decider(other):
        assert faultline.decider is other
        assert faultline.stream("s").choice(1_000_000) == expected
    assert faultline.decider is own
    with pytest.raises(KeyError), faultline.use_decider(Decider(5)):
        raise KeyError("boom")
    assert faultline.decider is own
    faultline.adopt_decider(other)
    assert faultline.decider is other
    faultline.close()


def test_services_are_typed_made_once_and_peeked_without_making() -> None:
    faultline = Faultline(seed=1)
    key: ServiceKey[list[int]] = ServiceKey("numbers")
    made: list[int] = []

    def make(context: FaultContext) -> list[int]:
        made.append(1)
        return [1, 2]

    assert faultline.peek(key) is None
    first = faultline.service(key, make)
    assert faultline.service(key, lambda ctx: [3]) is first
    assert faultline.peek(key) is first
    assert made == [1]
    faultline.close()


def test_events_have_kinds_that_know_whether_they_are_faults() -> None:
    faultline = Faultline(seed=1)
    faultline.apply("partial_read", max_bytes=2)  # a scenario applied: bookkeeping
    faultline.arm("p.arch", ValueError)
    with pytest.raises(ValueError):
        point("p.arch")
    kinds = [(e.kind, e.is_fault) for e in faultline.events]
    assert kinds == [(EventKind.SCENARIO, False), (EventKind.RAISE, True)]
    record = faultline.events[1].as_dict()
    assert json.loads(json.dumps(record))["kind"] == "raise"
    assert record["fault"] is True
    faultline.close()


def test_an_action_of_the_users_own_kind_is_a_fault() -> None:
    assert EventKind.of("my-own-action") is EventKind.ACTION
    assert EventKind.ACTION.is_fault
    assert EventKind.of("proxy") is EventKind.PROXY
    assert not EventKind.PROXY.is_fault


def test_one_formatter_for_an_event_line() -> None:
    faultline = Faultline(seed=1)
    event = faultline.record(EventKind.NOTE, "x", "detail")
    assert str(event) == format_event(event.time, event.thread, "note", "x", "detail")
    assert str(event).endswith("] note x: detail")
    faultline.close()
