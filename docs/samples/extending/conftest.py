"""An action and a scenario of our own (the extending page shows this file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_faultline import actions, scenario
from pytest_faultline.actions import PROCEED, Hit


@dataclass
class Garbage(actions.Action):
    """Make the target return ``junk`` instead of running."""

    junk: bytes = b"\x00garbage"
    kind = "garbage"  # not a built-in kind: its events are of kind "action", a fault

    def perform(self, hit: Hit) -> Any:
        return self.junk  # anything but PROCEED is returned in place of the call

    def describe(self) -> str:
        return f"return {self.junk!r}"


@dataclass
class Count(actions.Action):
    """Count arrivals without acting (``PROCEED``: the call goes on)."""

    seen: int = 0
    kind = "watch"

    def perform(self, hit: Hit) -> Any:
        self.seen += 1
        return PROCEED


LIFECYCLE: list[str] = []


@scenario("garbage_replies")
def garbage_replies(faultline, times: int = 1):
    """The first `times` backend replies are garbage; checks the body ran at teardown."""
    faultline.arm("cache:fetch", Garbage(), times=times)
    faultline.undo.push(lambda: LIFECYCLE.append("undo"), "note the undo")
    faultline.add_handler("wake", lambda hit: LIFECYCLE.append("wake"))

    def around_body(call):
        LIFECYCLE.append("body starts")
        try:
            return call()
        finally:
            LIFECYCLE.append("body ends")

    faultline.wrap_body(around_body)
    yield  # the test runs here; what follows runs at teardown, as an undo step
    LIFECYCLE.append("scenario teardown")
