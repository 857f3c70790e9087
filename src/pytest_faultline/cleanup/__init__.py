"""Deferred cleanup and the controllable clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._pending import pending

if TYPE_CHECKING:
    from ..controller import Faultline


def make_clock(faultline: Faultline) -> Any:
    pending("faultline.clock", "the controllable clock")


def make_deferral(faultline: Faultline, target: Any, *, until: Any, seconds: float | None) -> Any:
    pending("faultline.defer()", "the deferral machinery")
