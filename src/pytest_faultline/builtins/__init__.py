"""The built-in scenarios, registered through the same ``@scenario`` decorator users call.

Importing this package must stay cheap: each scenario imports its machinery when it runs.
"""

from __future__ import annotations

from . import cleanup, locks, net, sweep, tasks, threads

__all__ = ["cleanup", "locks", "net", "sweep", "tasks", "threads"]
