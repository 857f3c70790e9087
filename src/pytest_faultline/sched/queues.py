"""``queue.SimpleQueue`` under the scheduler.

The real one is a C type whose ``get`` blocks in C, outside the scheduler's control, so a run
replaces it with this model (``concurrent.futures.ThreadPoolExecutor`` feeds its workers through
one).
"""

from __future__ import annotations

import queue
from collections import deque
from typing import Any

from .. import _raw
from .primitives import _name, _poll, _Waiter
from .runtime import ThreadRecord, current, note_foreign

__all__ = ["ManagedSimpleQueue"]


class ManagedSimpleQueue:
    """``queue.SimpleQueue`` (a C type) modelled in Python, so its waits are scheduling points."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._mutex = _raw.allocate_lock()
        self._waiters: list[_Waiter] = []
        _name(self, "Q")

    def holders(self) -> list[ThreadRecord]:
        return []

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._mutex:
            self._items.append(item)
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.wake()
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "put", self)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def _has_items(self) -> bool:
        return bool(self._items)

    def _pop(self) -> tuple[bool, Any]:
        with self._mutex:
            if self._items:
                return True, self._items.popleft()
            return False, None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], "get", self)
        while True:
            got, item = self._pop()
            if got:
                return item
            if not block:
                raise queue.Empty
            if ctx is None:
                note_foreign()
                ok = _poll(self._has_items, timeout)
            else:
                ok = ctx[0].block(ctx[1], "get", self, self._has_items, timeout)
            if not ok:
                got, item = self._pop()
                if got:
                    return item
                raise queue.Empty

    def get_nowait(self) -> Any:
        return self.get(False)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
