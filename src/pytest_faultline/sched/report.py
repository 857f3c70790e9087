"""What the scheduler tells the user: deadlocks as wait-for cycles, stalls with every stack, and
the swimlane of the last steps of a failing schedule."""

from __future__ import annotations

import inspect
import linecache
import re
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._sites import relative
from .runtime import (
    BLOCKED,
    DONE,
    OUTSIDE,
    Scheduler,
    Step,
    ThreadRecord,
    is_internal,
    resource_name,
)

if TYPE_CHECKING:
    from types import FrameType

    from .explore import RunLog

__all__ = ["deadlock_message", "describe_blocking", "stall_message", "swimlane"]

SWIMLANE_STEPS = 24
PREEMPTED = " >> preempted"
COLUMN_MAX = 72
STACK_LINES = 8


def _holders(resource: object) -> list[ThreadRecord]:
    holders = getattr(resource, "holders", None)
    return list(holders()) if callable(holders) else []


def _locks_held(sched: Scheduler) -> dict[int, list[object]]:
    """Per thread index, the managed locks it holds that some blocked thread waits for."""
    out: dict[int, list[object]] = {}
    for t in sched.threads:
        res = t.resource
        if t.state != BLOCKED or res is None or isinstance(res, ThreadRecord):
            continue
        for holder in _holders(res):
            bucket = out.setdefault(holder.index, [])
            if res not in bucket:
                bucket.append(res)
    return out


def _cycle(sched: Scheduler) -> list[ThreadRecord] | None:
    """A cycle in the wait-for graph (thread -> holder of what it waits for), if any."""
    edges: dict[int, list[ThreadRecord]] = {}
    for t in sched.threads:
        if t.state == BLOCKED and t.resource is not None:
            edges[t.index] = [h for h in _holders(t.resource) if h is not t]
    for start in sched.threads:
        path: list[ThreadRecord] = []
        seen: dict[int, int] = {}
        node: ThreadRecord | None = start
        while node is not None and node.index not in seen:
            seen[node.index] = len(path)
            path.append(node)
            nxt = edges.get(node.index) or []
            node = nxt[0] if nxt else None
        if node is not None:
            return path[seen[node.index] :]
    return None


def _describe_wait(rec: ThreadRecord) -> str:
    res = rec.resource
    if isinstance(res, ThreadRecord):
        return f"waits for {res.label} to finish"
    if res is None:
        return f"waits in {rec.op}"
    return f"waits {resource_name(res)}"


def _stack(frame: FrameType | None) -> list[str]:
    if frame is None:
        return ["      (no stack: the thread has not started)"]
    summary = [fs for fs in traceback.extract_stack(frame) if not is_internal(fs.filename)]
    lines = []
    for fs in summary[-STACK_LINES:]:
        where = f"{relative(fs.filename)}:{fs.lineno} in {fs.name}"
        lines.append(f"      {where}" + (f": {fs.line.strip()}" if fs.line else ""))
    return lines or ["      (only pytest-faultline frames)"]


def _stacks(sched: Scheduler, threads: Iterable[ThreadRecord]) -> list[str]:
    frames = sched.frames()
    lines = []
    for t in threads:
        if t.state == DONE:
            continue
        lines.append(f"  {t.title}, {t.state}, last at {t.site} ({t.op}):")
        lines.extend(_stack(frames.get(t.ident) if t.ident is not None else None))
    return lines


def _sites(resources: Iterable[object]) -> list[str]:
    lines = []
    seen: set[int] = set()
    for res in resources:
        if id(res) in seen or isinstance(res, ThreadRecord):
            continue
        seen.add(id(res))
        kind = type(res).__name__.removeprefix("Managed")
        lines.append(f"  {resource_name(res)} = {kind} created at {getattr(res, '_fl_site', '?')}")
    return lines


def deadlock_message(sched: Scheduler, me: ThreadRecord) -> str:
    """Every managed thread is blocked: the wait-for cycle (or the lost wakeup), the sites of
    the primitives involved and every thread's stack."""
    blocked = [t for t in sched.threads if t.state == BLOCKED]
    held = _locks_held(sched)
    cycle = _cycle(sched)
    lines = ["deadlock: every managed thread is blocked"]
    if cycle:
        parts = []
        for t in cycle:
            mine = [resource_name(r) for r in held.get(t.index, [])]
            holds = f"holds {', '.join(mine)} " if mine else ""
            parts.append(f"{t.label} {holds}{_describe_wait(t)}")
        lines.append("wait-for cycle: " + "; ".join(parts))
    else:
        waits = [t for t in blocked if t.resource is not None and not _holders(t.resource)]
        if waits:
            parts = [
                f"{t.label} {_describe_wait(t)} ({t.op}) and no running thread is left to wake it"
                for t in waits
            ]
            lines.append("lost wakeup: " + "; ".join(parts))
            lines.append(
                "  (the notify/set came before the wait, or never comes: wait in a loop on a "
                "condition checked under the lock, e.g. Condition.wait_for(predicate))"
            )
        else:
            lines.append("no wait-for cycle among managed locks")
    for t in blocked:
        mine = [resource_name(r) for r in held.get(t.index, [])]
        extra = f", holds {', '.join(mine)}" if mine else ""
        lines.append(f"  {t.title} {_describe_wait(t)} at {t.site}{extra}")
    resources = [t.resource for t in blocked if t.resource is not None]
    lines.extend(sorted(_sites(resources)))
    lines.append("stacks:")
    lines.extend(_stacks(sched, sched.threads))
    return "\n".join(lines)


def stall_message(sched: Scheduler) -> str:
    """A managed thread did not come back to the scheduler in time."""
    cur = sched.current
    outside = [t for t in sched.threads if t.state == OUTSIDE]
    if cur is None and outside:
        cur = outside[0]
    who = cur.title if cur is not None else "a managed thread"
    where = ""
    if cur is not None:
        where = " since it started" if cur.op == "start" else f" after {cur.op} at {cur.site}"
    lines = [
        f"{who} did not come back to the scheduler within {sched.stall_timeout:g} s{where}: it "
        f"is blocked outside the scheduler's control (a lock, queue or executor created before "
        f"the run or imported as 'from threading import Lock' elsewhere, real I/O, C code, or a "
        f"busy loop without scheduling points). The run was stopped instead of hanging.",
    ]
    for t in sched.threads:
        if t.evicted:
            lines.append(f"  {t.title} is blocked at {t.site} on {t.evicted}")
    lines.append("stacks:")
    lines.extend(_stacks(sched, sched.threads))
    return "\n".join(lines)


_NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*")


def _lookup(frame: FrameType, dotted: str) -> object:
    head, *rest = dotted.split(".")
    if head in frame.f_locals:
        value = frame.f_locals[head]
    elif head in frame.f_globals:
        value = frame.f_globals[head]
    else:
        raise LookupError(head)
    for part in rest:
        value = inspect.getattr_static(value, part)  # no property or __getattr__ runs here
    return value


def describe_blocking(frame: FrameType) -> str:
    """What a thread sitting in a call the scheduler cannot see is blocked on, named from the
    source line of ``frame``: ``acquire REAL (a lock the scheduler does not manage, mod.REAL)``."""
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    module = frame.f_globals.get("__name__", "?")
    for dotted in _NAME.findall(line):
        try:
            value = _lookup(frame, dotted)
        except (LookupError, AttributeError):
            continue
        if getattr(type(value), "__module__", "").startswith("pytest_faultline"):
            continue
        if callable(getattr(value, "acquire", None)) or callable(getattr(value, "wait", None)):
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            where = f"{module}.{dotted}" if dotted in frame.f_globals else dotted
            return f"{dotted} ({kind}, not managed by the scheduler: {where})"
    return line[:60] or "a call the scheduler cannot see"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def swimlane(sched: RunLog, steps: int = SWIMLANE_STEPS) -> str:
    """The last ``steps`` scheduling points, one column per thread."""
    trace: list[Step] = list(sched.trace)[-steps:]
    if not trace:
        return "(no scheduling points)"
    threads = sorted({s.thread for s in trace})
    cells = {
        s.number: f"{s.site} {s.op}" + (PREEMPTED if s.number in sched.preempted_at else "")
        for s in trace
    }
    width = {
        t: min(
            COLUMN_MAX,
            max(
                [len(sched.threads[t].title)]
                + [len(cells[s.number]) for s in trace if s.thread == t]
            ),
        )
        for t in threads
    }
    head = "  step | " + " | ".join(
        _fit(sched.threads[t].title, width[t]).ljust(width[t]) for t in threads
    )
    rule = "  -----+-" + "-+-".join("-" * width[t] for t in threads)
    rows = [head.rstrip(), rule]
    for s in trace:
        row = [
            _fit(cells[s.number], width[t]).ljust(width[t]) if t == s.thread else " " * width[t]
            for t in threads
        ]
        rows.append(f"  {s.number:>4} | " + " | ".join(row).rstrip())
    total = sched.steps
    if total > len(trace):
        rows.insert(0, f"  last {len(trace)} of {total} scheduling points:")
    if any(s.number in sched.preempted_at for s in trace):
        rows.append(f"  ({PREEMPTED.strip()}: the scheduler switched to another thread there)")
    return "\n".join(rows)
