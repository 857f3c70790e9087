"""Built-in cleanup and time scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..actions import Call
from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("delayed_cleanup")
def delayed_cleanup(
    faultline: Faultline, target: str, until: str | None = None, seconds: float | None = None
) -> None:
    """Hold calls to `target`; run them after `until`, `seconds` of clock time, or at test end."""
    faultline.defer(target, until=until, seconds=seconds)


@scenario("clock_jump")
def clock_jump(faultline: Faultline, at: str, seconds: float) -> None:
    """Virtual time jumps forward by `seconds` when `at` is reached."""
    clock = faultline.clock
    faultline.arm(at, Call(lambda *args, **kwargs: clock.advance(seconds)))
