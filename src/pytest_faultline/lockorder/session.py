"""``--faultline-lockdep``: one lock-order graph for the whole session.

The plugin object is registered at configure time by ``plugin.py``. It tracks every lock made
from then on, including locks made at import time by test modules and conftests, so an order
taken in one test and its reverse in another is caught. It only records; the terminal summary
lists every inversion and the session fails when there is one.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .watch import LockOrder

__all__ = ["LOCKDEP_PLUGIN", "LockdepPlugin"]

LOCKDEP_PLUGIN = "faultline-lockdep"


class LockdepPlugin:
    """Session-wide lock-order watcher (``--faultline-lockdep``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.watcher = LockOrder(context="")
        self.watcher.start()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.watcher.graph.context = item.nodeid
        try:
            return (yield)
        finally:
            self.watcher.graph.context = ""

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.watcher.graph.inversions and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        graph = self.watcher.graph
        inversions = graph.inversions
        if not inversions:
            terminalreporter.write_sep("-", "faultline lockdep")
            terminalreporter.write_line(
                f"no lock-order inversion ({len(graph.edges)} lock-order edges seen)"
            )
            return
        terminalreporter.write_sep(
            "=", f"faultline lockdep: {len(inversions)} lock-order inversion(s)", red=True
        )
        for number, inversion in enumerate(inversions, 1):
            terminalreporter.write_line(f"[{number}] {inversion.report()}")
            terminalreporter.write_line("")

    def pytest_unconfigure(self) -> None:
        self.watcher.stop()
