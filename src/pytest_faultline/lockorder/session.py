"""``--faultline-lockdep``: one lock-order graph for the whole session.

The plugin object is registered at configure time (by ``plugin.py``, or by the
``pytest_faultline.lockorder.lockdep_plugin`` module given to ``-p``). It tracks every lock made
from then on, including locks made at import time by test modules and conftests, so an order
taken in one test and its reverse in another is caught. It only records; the terminal summary
lists every inversion and the session fails when there is one.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .watch import LockOrder

__all__ = ["LOCKDEP_HELP", "LOCKDEP_OPTION", "LOCKDEP_PLUGIN", "LockdepPlugin"]

LOCKDEP_OPTION = "--faultline-lockdep"
LOCKDEP_DEST = "faultline_lockdep"
LOCKDEP_PLUGIN = "faultline-lockdep"
LOCKDEP_HELP = (
    "watch the order locks are taken in across the whole session (one graph for all tests); "
    "the terminal summary lists every lock-order inversion and the session fails on one"
)


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
