"""The MIDAS ODB/SYSMSG deadlock and the cm_exist() stale-key race, retold small: a buggy and a
fixed implementation.

``midas_cm_msg.buggy`` and ``midas_cm_msg.fixed`` each provide ``Midas``; the ODB, the SYSMSG
buffer, client start-up and the watchdog are shared (``midas_cm_msg.core``); the torture test's
workload is ``midas_cm_msg.workload``.
"""

from __future__ import annotations

from . import buggy, fixed

IMPLEMENTATIONS = {"buggy": buggy, "fixed": fixed}

__all__ = ["IMPLEMENTATIONS", "buggy", "fixed"]
