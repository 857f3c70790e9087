"""Named fault points: the one hook the code under test may call.

This module must stay import-light: production code imports ``point`` and must not pull in
pytest, the controller or anything else. Disarmed, ``point`` costs one dict membership test.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: importing typing (with re, enum, contextlib) costs
# several milliseconds, and production code importing ``point`` must not pay for it. The type
# checkers treat any constant named TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    # name -> dispatcher installed by the armed controller. The dispatcher gets the point's name
    # and its keyword context and returns what ``point`` returns.
    Dispatcher: TypeAlias = Callable[[str, dict[str, Any]], Any]
    # Called for every point, armed or not, while set (the thread scheduler makes every point a
    # scheduling point). Kept out of ``point`` itself so the disarmed path stays one lookup:
    # while an observer is installed, ``point``'s code object is swapped for
    # ``_observed_point``'s.
    Observer: TypeAlias = Callable[[str, dict[str, Any]], None]

_armed: dict[str, Dispatcher] = {}
_observer: Observer | None = None


def point(name: str, /, **context: Any) -> Any:
    """Mark a fault point named ``name`` in the code under test.

    A no-op returning ``None`` unless a test armed this name with ``faultline.arm``; then it
    performs the armed action (raise, delay, stall, return a value, ...). ``context`` is passed to
    the action and recorded in the fault event.
    """
    if name in _armed:
        __tracebackhide__ = True  # the failure is shown where the point is, not in the plugin
        return _armed[name](name, context)
    return None


def _observed_point(name: str, /, **context: Any) -> Any:
    observer = _observer
    if observer is not None:
        observer(name, context)
    if name in _armed:
        __tracebackhide__ = True
        return _armed[name](name, context)
    return None


_PLAIN_CODE = point.__code__


def set_observer(observer: Observer | None) -> Observer | None:
    """Install ``observer`` for every point (``None`` removes it); return the previous one."""
    global _observer
    previous = _observer
    _observer = observer
    point.__code__ = _PLAIN_CODE if observer is None else _observed_point.__code__
    return previous


def arm_point(name: str, dispatcher: Dispatcher) -> None:
    _armed[name] = dispatcher


def disarm_point(name: str, dispatcher: Dispatcher) -> None:
    if _armed.get(name) is dispatcher:
        del _armed[name]


def armed_names() -> list[str]:
    return sorted(_armed)
