"""Line-level preemption: every line executed in chosen modules is a scheduling point.

``sys.monitoring`` on Python 3.12+ (one LINE event, disabled at once for code outside the
modules), ``sys.settrace`` before (installed per managed thread, which is all ``settrace`` can
do). Either way, races on plain attributes and dicts that span lines are found in unmodified code.
"""

from __future__ import annotations

import linecache
import os
import sys
from types import CodeType, FrameType
from typing import Any

from .runtime import current

__all__ = ["LineHook", "claim_tool", "line_point", "make_hook", "module_files", "release_tool"]

TOOL_NAME = "pytest-faultline"
USE_MONITORING = sys.version_info >= (3, 12)


def module_files(names: list[str]) -> frozenset[str]:
    """The source files of the modules named ``names`` (imported here if needed)."""
    import importlib

    files = set()
    for name in names:
        module = importlib.import_module(name)
        path = getattr(module, "__file__", None)
        if path:
            files.add(path)
            files.add(os.path.abspath(path))
    return frozenset(files)


# (file, line) -> (operation, site) for the swimlane; per process, so a line is read once.
_LINE_POINTS: dict[tuple[str, int], tuple[str, str]] = {}


def line_point(filename: str, lineno: int) -> tuple[str, str]:
    """The operation (the line's source) and the site (``file.py:LINE``) of a line point."""
    key = (filename, lineno)
    point = _LINE_POINTS.get(key)
    if point is None:
        text = linecache.getline(filename, lineno).strip()
        point = _LINE_POINTS[key] = (
            text[:40] if text else "line",
            f"{os.path.basename(filename)}:{lineno}",
        )
    return point


def claim_tool(mode: str) -> int:
    """A free ``sys.monitoring`` tool id for one run (3.12+)."""
    mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    for tool in (4, 3, 2, 1, 0, 5):
        try:
            mon.use_tool_id(tool, TOOL_NAME)
        except ValueError:
            continue
        return tool
    from ..errors import FaultlineError

    raise FaultlineError(
        f"preempt={mode!r} needs a free sys.monitoring tool id, and all six are taken "
        "(debuggers, coverage, profilers); run without them or use preempt='sync'"
    )


def release_tool(tool: int) -> None:
    """Free ``tool`` and re-enable what it disabled (another tool may take the id)."""
    mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    mon.free_tool_id(tool)
    mon.restart_events()


class LineHook:
    """Makes lines of ``files`` scheduling points for managed threads during one run."""

    def __init__(self, files: frozenset[str]) -> None:
        self.files = files
        self._tool: int | None = None
        self._previous_traces: dict[int, Any] = {}

    # -- sys.monitoring (3.12+): one global hook, filtered by thread --------------------------

    def install(self) -> None:
        if not USE_MONITORING or self._tool is not None:  # installed already (an exploration's)
            return
        mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        self._tool = claim_tool("lines")
        mon.restart_events()
        mon.register_callback(self._tool, mon.events.LINE, self._on_line)
        mon.set_events(self._tool, mon.events.LINE)

    def uninstall(self) -> None:
        if self._tool is None:
            return
        mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        mon.set_events(self._tool, 0)
        mon.register_callback(self._tool, mon.events.LINE, None)
        release_tool(self._tool)
        self._tool = None

    def _on_line(self, code: CodeType, line: int) -> Any:
        if code.co_filename not in self.files:
            return sys.monitoring.DISABLE  # type: ignore[attr-defined,unused-ignore]
        ctx = current()
        if ctx is not None:
            op, site = line_point(code.co_filename, line)
            ctx[0].point(ctx[1], op, None, site=site)
        return None

    # -- sys.settrace (3.11): per thread ------------------------------------------------------

    def thread_enter(self) -> None:
        if USE_MONITORING:
            return
        sys.settrace(self._trace_call)

    def thread_exit(self) -> None:
        if USE_MONITORING:
            return
        sys.settrace(None)

    def _trace_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in self.files:
            return self._trace_line
        return None

    def _trace_line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            ctx = current()
            if ctx is not None:
                op, site = line_point(frame.f_code.co_filename, frame.f_lineno)
                ctx[0].point(ctx[1], op, None, site=site)
        return self._trace_line


def make_hook(preempt: str, modules: tuple[str, ...], files: frozenset[str]) -> Any:
    """The hook that makes ``modules``' lines or bytecodes scheduling points, or None."""
    if preempt == "bytecode":
        from .bytecode import BytecodeHook

        return BytecodeHook(modules, files)
    if preempt == "lines" and files:
        return LineHook(files)
    return None
