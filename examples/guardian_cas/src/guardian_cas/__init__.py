"""The LIGO guardian server-thread incident, retold small: a buggy and a fixed implementation.

``guardian_cas.cas`` is the channel-access-style server library (not thread-safe, like the one
in the incident); ``guardian_cas.buggy`` and ``guardian_cas.fixed`` each provide ``Guardian``,
the daemon; what they share is in ``guardian_cas.core``.
"""

from __future__ import annotations

from . import buggy, fixed

IMPLEMENTATIONS = {"buggy": buggy, "fixed": fixed}

__all__ = ["IMPLEMENTATIONS", "buggy", "fixed"]
