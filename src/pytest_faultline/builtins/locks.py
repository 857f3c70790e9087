"""Built-in lock-order and thread-affinity scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("lock_order")
def lock_order(faultline: Faultline, fail: bool = True) -> None:
    """Record lock acquisition order; a cycle (A then B here, B then A there) is an inversion."""
    from ..lockorder import watch_lock_order

    watch_lock_order(faultline, fail=fail)


@scenario("thread_affinity")
def thread_affinity(faultline: Faultline, types: list[str]) -> None:
    """Instances of `types` (import paths) raise when used from a thread but their creator."""
    from ..lockorder import confine_types

    confine_types(faultline, types)
