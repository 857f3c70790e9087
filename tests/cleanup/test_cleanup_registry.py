"""Incident 000's crash: cleanup delegated to a worker runs after the freed slot was reused."""

from __future__ import annotations

from collections.abc import Iterator

import cleanup_apps
import pytest
from cleanup_apps import FixedRegistry, NaiveRegistry, StaleHandle

from pytest_faultline.cleanup import deferrals
from pytest_faultline.controller import Faultline

BOUND_S = 5.0


@pytest.fixture
def naive() -> Iterator[NaiveRegistry]:
    registry = NaiveRegistry()
    yield registry
    registry.close()


@pytest.fixture
def fixed() -> Iterator[FixedRegistry]:
    registry = FixedRegistry()
    yield registry
    registry.close()


def reuse_after_disconnect(registry: NaiveRegistry | FixedRegistry, faultline: Faultline) -> str:
    """A connects and disconnects; once the worker holds A's cleanup, B connects (reusing A's
    slot); the cleanup is released when ``connect`` returns. Returns where B's messages go."""
    registry.connect("A")
    registry.disconnect("A")
    (deferral,) = deferrals(faultline)
    assert deferral.wait(1, timeout=BOUND_S), "the worker never reached its cleanup"
    handle_b = registry.connect("B")
    assert deferral.released, "connect() returning should have released the cleanup"
    return registry.route(handle_b)


def test_naive_registry_works_when_the_worker_is_prompt(naive: NaiveRegistry) -> None:
    naive.connect("A")
    naive.disconnect("A")
    assert naive.drain()
    assert naive.route(naive.connect("B")) == "B"


@pytest.mark.faultline(
    "delayed_cleanup",
    target="cleanup_apps:NaiveRegistry.forget",
    until="cleanup_apps:NaiveRegistry.connect",
)
def test_late_cleanup_wipes_the_next_clients_session(
    naive: NaiveRegistry, faultline: Faultline
) -> None:
    with pytest.raises(StaleHandle, match="slot 1 belongs to None, not 'B'"):
        reuse_after_disconnect(naive, faultline)
    (deferral,) = deferrals(faultline)
    (call,) = deferral.released
    # Held on the worker, released by B's connect, and run by the worker itself.
    assert call.thread == "cleanup-worker"
    assert call.ran_on == "cleanup-worker"
    assert naive.cleanup_threads == ["cleanup-worker"]
    assert call.mode == "parked"
    assert call.trigger == "until 'cleanup_apps:NaiveRegistry.connect' returned"
    assert call.args[1:] == ("A", cleanup_apps.Handle(1, "A"))
    assert call.describe() == "#1 NaiveRegistry.forget('A', Handle(slot=1, owner='A'))"
    assert call.window is not None
    assert call.window >= 0
    kinds = [(e.kind, e.name) for e in faultline.events if e.name.endswith("forget")]
    assert kinds == [
        ("defer", "cleanup_apps:NaiveRegistry.forget"),
        ("hold", "cleanup_apps:NaiveRegistry.forget"),
        ("release", "cleanup_apps:NaiveRegistry.forget"),
        ("ran", "cleanup_apps:NaiveRegistry.forget"),
    ]
    ran = next(e for e in faultline.events if e.kind == "ran")
    assert "window: held at" in ran.detail
    assert "released at" in ran.detail


@pytest.mark.faultline(
    "delayed_cleanup",
    target="cleanup_apps:FixedRegistry.forget",
    until="cleanup_apps:FixedRegistry.connect",
)
def test_synchronous_cleanup_survives_a_late_worker(
    fixed: FixedRegistry, faultline: Faultline
) -> None:
    assert reuse_after_disconnect(fixed, faultline) == "B"
    assert fixed.forgotten == ["A"]
    assert fixed.cleanup_threads == ["cleanup-worker"]


def test_the_worker_keeps_its_queue_order_while_parked(
    naive: NaiveRegistry, faultline: Faultline
) -> None:
    """A parked worker is a late worker: messages queued behind the held one wait behind it."""
    deferral = faultline.defer(NaiveRegistry.forget)
    naive.connect("A")
    naive.connect("C")
    naive.disconnect("A")
    naive.disconnect("C")
    assert deferral.wait(1, timeout=BOUND_S)
    assert [c.args[1] for c in deferral.pending] == ["A"]  # C's cleanup is still queued
    released = deferral.release()
    assert [c.args[1] for c in released] == ["A"]
    assert naive.drain()
    assert naive.forgotten == ["A", "C"]  # C's ran directly: release() ends the deferral
    assert deferral.pending == []
