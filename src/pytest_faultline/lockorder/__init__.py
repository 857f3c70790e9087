"""Lock-order checking and thread affinity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._pending import pending

if TYPE_CHECKING:
    from ..controller import Faultline


def confine(faultline: Faultline, obj: Any) -> Any:
    pending("faultline.confine()", "the thread-affinity watcher")


def transfer(faultline: Faultline, obj: Any, thread: Any) -> None:
    pending("faultline.transfer()", "the thread-affinity watcher")


def lock_order(faultline: Faultline) -> Any:
    pending("faultline.lock_order", "the lock-order watcher")


def watch_lock_order(faultline: Faultline, *, fail: bool) -> None:
    pending("scenario 'lock_order'", "the lock-order watcher")


def confine_types(faultline: Faultline, types: list[str]) -> None:
    pending("scenario 'thread_affinity'", "the thread-affinity watcher")
