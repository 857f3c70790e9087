"""Where a thread waits for the clock or for a release: one hook the thread scheduler can take.

A clock-driven timer's thread waits for its due time, and a worker whose call is held waits for
the release. By default they wait on a raw event. Under the thread scheduler those waits must be
scheduler-visible (a managed thread blocked on a raw event would keep the baton), so the
scheduler installs a hook that blocks the managed thread through the scheduler instead.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import _raw

__all__ = ["ParkHook", "park", "set_park_hook"]

# hook(event, timeout, reason) -> True if the event was set, False on timeout.
ParkHook = Callable[[_raw.RawEvent, float, str], bool]
_hook: ParkHook | None = None


def park(event: _raw.RawEvent, timeout: float, reason: str) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds, through the installed hook if any."""
    hook = _hook
    if hook is not None:
        return hook(event, timeout, reason)
    return event.wait(timeout)


def set_park_hook(hook: ParkHook | None) -> ParkHook | None:
    """Install ``hook`` for every park (``None`` removes it); return the previous one."""
    global _hook
    previous = _hook
    _hook = hook
    return previous
