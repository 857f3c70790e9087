"""Shared by every report and every layer that replaces lock factories: lock-factory chaining.

A layer that replaces ``threading.Lock``/``RLock`` while another layer's factory is installed
(the thread scheduler per run, under the lock-order watcher) must not drop that layer: the
installed factory may carry a ``__faultline_rechain__`` function that wraps the new stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RECHAIN", "rechain"]

RECHAIN = "__faultline_rechain__"


def rechain(current: Callable[..., Any], stand_in: Callable[..., Any]) -> Callable[..., Any]:
    """What a layer patching ``threading.Lock``/``RLock`` should install instead of
    ``stand_in``: ``stand_in`` itself, or, when ``current`` is a lock-order factory, a factory
    wrapping ``stand_in()``'s locks, so lock order is still watched under that layer."""
    make = getattr(current, RECHAIN, None)
    return stand_in if make is None else make(stand_in)
