"""Built-in lock-order and thread-affinity scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("lock_order")
def lock_order(faultline: Faultline, fail: bool = True) -> None:
    """Record lock acquisition order; a cycle (A then B here, B then A there) is an inversion.

    Locks made during the test (``threading.Lock``, ``RLock`` and those inside ``Condition``,
    ``Semaphore``, ``Event`` and ``queue.Queue``) are tracked. With ``fail=True`` the acquire
    that closes a cycle raises ``LockOrderError`` with both threads' stacks, and the test fails
    even when that happened in a worker thread whose exception was swallowed. With
    ``fail=False`` inversions are only recorded: assert on ``faultline.lock_order.inversions``.
    """
    from ..lockorder import watch_lock_order

    watch_lock_order(faultline, fail=fail)


@scenario("thread_affinity")
def thread_affinity(faultline: Faultline, types: list[str], allow: list[str] | None = None) -> None:
    """Instances of `types` (import paths) raise when used from a thread other than their maker.

    Each instance made during the test is confined to the thread that made it: a method call or
    attribute write from another thread raises ``ThreadAffinityError`` naming both threads and
    where the object was made. ``allow`` names threads that may use them too;
    ``faultline.transfer(obj, thread)`` hands one over.
    """
    from ..lockorder import confine_types

    confine_types(faultline, types, allow)
