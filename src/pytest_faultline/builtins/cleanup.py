"""Built-in cleanup and time scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actions import PROCEED, Action, Hit
from ..errors import FaultlineError
from ..registry import scenario

if TYPE_CHECKING:
    from ..cleanup import Clock
    from ..controller import Faultline


@scenario("delayed_cleanup")
def delayed_cleanup(
    faultline: Faultline, target: str, until: str | None = None, seconds: float | None = None
) -> None:
    """Hold calls to `target`; run them after `until` returns, `seconds` of clock time, or at
    test end."""
    faultline.defer(target, until=until, seconds=seconds)


class ClockJump(Action):
    """Advance the test's clock by ``seconds`` (firing what falls due), then go on."""

    kind = "jump"

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds

    def perform(self, hit: Hit) -> Any:
        self.clock.advance(self.seconds)
        return PROCEED

    def describe(self) -> str:
        return f"clock jumps +{self.seconds:g}s"


@scenario("clock_jump")
def clock_jump(faultline: Faultline, at: str, seconds: float) -> None:
    """Virtual time jumps forward by `seconds` the first time `at` is reached."""
    if isinstance(seconds, bool) or seconds <= 0:
        raise FaultlineError(
            f"clock_jump: seconds must be a number > 0 (how far the clock jumps when {at!r} is "
            f"reached), got {seconds!r}"
        )
    faultline.arm(at, ClockJump(faultline.clock, float(seconds)), times=1)
