"""A session server in asyncio, in a buggy and a fixed form (see the README)."""

from __future__ import annotations

from types import ModuleType

from . import buggy, fixed

IMPLEMENTATIONS: dict[str, ModuleType] = {"buggy": buggy, "fixed": fixed}

__all__ = ["IMPLEMENTATIONS", "buggy", "fixed"]
