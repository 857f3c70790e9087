"""The HTCondor startd/schedd ALIVE protocol, retold small: a buggy and a fixed implementation.

``condor_alive.buggy`` and ``condor_alive.fixed`` each provide ``Stream`` and ``Schedd``; the
wire format, the claim table and the startd are shared (``condor_alive.core``).
"""

from __future__ import annotations

from . import buggy, fixed

IMPLEMENTATIONS = {"buggy": buggy, "fixed": fixed}

__all__ = ["IMPLEMENTATIONS", "buggy", "fixed"]
