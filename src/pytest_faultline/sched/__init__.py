"""The deterministic thread scheduler: managed threads run one at a time under a baton, every
synchronisation operation (and optionally every line) is a scheduling point, and a search
strategy drawn from the test's decider chooses who runs next. See ``docs/concepts/sched.rst``."""

from __future__ import annotations

from .api import explore, install_thread_preemption, replay
from .explore import Exploration
from .io import outside_scheduler

__all__ = ["Exploration", "explore", "install_thread_preemption", "outside_scheduler", "replay"]
