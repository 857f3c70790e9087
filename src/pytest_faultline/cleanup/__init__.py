"""Deferred cleanup and the controllable clock.

``faultline.defer(target, until=, seconds=)`` holds calls to a cleanup and runs them late, on the
thread that would have run them; ``faultline.clock`` freezes time and moves it on demand, firing
``threading.Timer`` callbacks and held calls as they fall due.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._context import ServiceKey
from ._park import set_park_hook
from .clock import CLOCK, Clock, ClockTimer
from .deferral import Deferral, HeldCall

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = [
    "CLOCK",
    "Clock",
    "ClockTimer",
    "Deferral",
    "HeldCall",
    "active_clock",
    "deferrals",
    "make_clock",
    "make_deferral",
    "set_park_hook",
]


DEFERRALS: ServiceKey[list[Deferral]] = ServiceKey("deferrals")


def make_clock(faultline: FaultContext) -> Clock:
    """Start the test's clock (the ``faultline.clock`` service factory)."""
    return Clock(faultline)


def make_deferral(
    faultline: FaultContext,
    target: str | Callable[..., Any],
    *,
    until: str | Callable[..., Any] | None,
    seconds: float | None,
) -> Deferral:
    """Hold calls to ``target`` for this test (what ``faultline.defer`` does)."""
    deferral = Deferral(faultline, target, until=until, seconds=seconds)
    deferrals(faultline).append(deferral)
    return deferral


def deferrals(faultline: FaultContext) -> list[Deferral]:
    """Every deferral of this test, in the order they were made (the ``delayed_cleanup``
    scenario's among them), so a test using the marker can wait on or inspect its deferral."""
    return faultline.service(DEFERRALS, lambda _: [])


def active_clock(faultline: FaultContext) -> Clock | None:
    """The test's clock if something started it, else None (without starting it).

    For the thread scheduler: when a clock runs, its virtual time is this clock's time
    (``clock.time()`` / ``clock.monotonic()``), it advances it with ``clock.advance(dt,
    wait=False)`` when every managed thread is asleep (``clock.next_due()`` says how far the next
    timer or held call is), and ``clock.add_listener`` tells it when the test moved the clock.
    """
    return faultline.peek(CLOCK)
