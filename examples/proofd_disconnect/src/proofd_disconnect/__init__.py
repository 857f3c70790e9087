"""The xproofd session daemon, retold small: a buggy and a fixed implementation.

``proofd_disconnect.buggy`` and ``proofd_disconnect.fixed`` each provide a ``Daemon``; the wire
format, the response pool, sessions and the client are shared (``core``, ``client``).
"""

from __future__ import annotations

from . import buggy, fixed

IMPLEMENTATIONS = {"buggy": buggy, "fixed": fixed}

__all__ = ["IMPLEMENTATIONS", "buggy", "fixed"]
