"""The deterministic thread scheduler."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._pending import pending

if TYPE_CHECKING:
    from ..controller import Faultline


def explore(faultline: Faultline, fn: Callable[[], object], **options: Any) -> Any:
    pending("faultline.explore()", "the thread scheduler")


def replay(faultline: Faultline, fn: Callable[[], object], token: str) -> Any:
    pending("faultline.replay()", "the thread scheduler")


def install_thread_preemption(faultline: Faultline, **options: Any) -> None:
    pending("scenario 'thread_preemption'", "the thread scheduler")
