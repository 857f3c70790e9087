"""Built-in cleanup and time scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import FaultlineError
from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("delayed_cleanup")
def delayed_cleanup(
    faultline: Faultline, target: str, until: str | None = None, seconds: float | None = None
) -> None:
    """Hold calls to `target`; run them after `until` returns, `seconds` of clock time, or at
    test end."""
    faultline.defer(target, until=until, seconds=seconds)


@scenario("clock_jump")
def clock_jump(faultline: Faultline, at: str, seconds: float) -> None:
    """Virtual time jumps forward by `seconds` the first time `at` is reached."""
    if isinstance(seconds, bool) or seconds <= 0:
        raise FaultlineError(
            f"seconds must be a number > 0 (how far the clock jumps when {at!r} is "
            f"reached), got {seconds!r}"
        )
    from ..cleanup.clock import ClockJump

    faultline.arm(at, ClockJump(faultline.clock, float(seconds)), times=1)
