"""Hooks the other features leave for the scheduler, taken when they are present.

* lock order: when the lock-order watcher has replaced ``threading.Lock``/``RLock``, its factory
  carries a ``__faultline_rechain__`` function that wraps our stand-in, so lock order is still
  watched inside explored runs;
* parking (deferred cleanup, clock timers): a thread waiting for a release or for clock time
  waits through the scheduler instead of on a raw event (which would keep the baton);
* the test's clock: when ``faultline.clock`` runs, the run's virtual time *is* the clock's
  time: when every managed thread is asleep the scheduler advances the clock, and when the test
  advances the clock, sleeping threads whose time has come wake up.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _raw
from .runtime import current

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["ParkHook", "active_clock", "chained_stand_in", "install_park_hook"]

RECHAIN_ATTR = "__faultline_rechain__"
ParkHook = Callable[[_raw.RawEvent, float, str], bool]


def chained_stand_in(name: str, stand_in: Callable[..., Any]) -> Callable[..., Any]:
    """What to install as ``threading.<name>``: ``stand_in``, wrapped by the lock-order
    watcher's factory when the watcher is installed."""
    make = getattr(getattr(threading, name), RECHAIN_ATTR, None)
    return stand_in if make is None else make(stand_in)


def _cleanup_attr(name: str) -> Any:
    # Not imported here: a clock or a deferral exists only once the test has used them, which
    # imports the package; until then there is nothing to follow or park, and a first run does
    # not pay for the import. (A deferral first made inside a run is parked through the
    # scheduler from the next run on.)
    module = sys.modules.get("pytest_faultline.cleanup")
    return None if module is None else getattr(module, name, None)


def active_clock(faultline: FaultContext) -> Any:
    """The test's running clock, or None."""
    find = _cleanup_attr("active_clock")
    clock = find(faultline) if callable(find) else None
    if clock is None or getattr(clock, "stopped", False):
        return None
    return clock


def install_park_hook(with_clock: bool) -> Callable[[], None] | None:
    """Route parked waits of managed threads through the scheduler; returns the undo."""
    setter = _cleanup_attr("set_park_hook")
    if not callable(setter):
        return None
    previous: ParkHook | None = None

    def hook(event: _raw.RawEvent, timeout: float, reason: str) -> bool:
        ctx = current()
        if ctx is None:
            return previous(event, timeout, reason) if previous is not None else event.wait(timeout)
        if event.is_set():
            return True
        # With a clock, what ends the wait is the clock reaching a due time (the scheduler
        # advances it when everyone sleeps): no virtual timeout of our own.
        return ctx[0].block(ctx[1], reason, None, event.is_set, None if with_clock else timeout)

    previous = setter(hook)

    def undo() -> None:
        setter(previous)

    return undo
