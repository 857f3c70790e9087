"""What the controlled loop tells the user: deadlocks among tasks as wait-for cycles (lock
holders included), lost wake-ups, stalls on real I/O, and every task's stack."""

from __future__ import annotations

from .loop import TaskControl, TaskLane, task_site, task_stack
from .points import holder_of, resource_name

__all__ = ["deadlock_message", "stall_message"]


def _waiting(control: TaskControl) -> list[TaskLane]:
    return [lane for lane in control.lanes() if lane.task is not None and not lane.task.done()]


def _cycle(lanes: list[TaskLane]) -> list[TaskLane] | None:
    edges: dict[int, TaskLane] = {}
    for lane in lanes:
        holder = holder_of(lane.waits_on) if lane.waits_on is not None else None
        if holder is not None and holder is not lane:
            edges[lane.index] = holder
    for start in lanes:
        path: list[TaskLane] = []
        seen: dict[int, int] = {}
        node: TaskLane | None = start
        while node is not None and node.index not in seen:
            seen[node.index] = len(path)
            path.append(node)
            node = edges.get(node.index)
        if node is not None:
            return path[seen[node.index] :]
    return None


def _held(lanes: list[TaskLane], lane: TaskLane) -> list[str]:
    names = []
    for other in lanes:
        res = other.waits_on
        if res is not None and holder_of(res) is lane and resource_name(res) not in names:
            names.append(resource_name(res))
    return names


def _describe(lane: TaskLane) -> str:
    res = lane.waits_on
    if res is None:
        return "awaits a future nothing will complete"
    holder = holder_of(res)
    held = f" (held by {holder.label})" if holder is not None else ""
    return f"waits on {resource_name(res)}{held}"


def _stacks(lanes: list[TaskLane]) -> list[str]:
    lines = []
    for lane in lanes:
        assert lane.task is not None
        lines.append(f"  {lane.title}, suspended at {task_site(lane.task)}:")
        lines.extend(f"      {line}" for line in task_stack(lane.task) or ["(no user frames)"])
    return lines


def deadlock_message(control: TaskControl) -> str:
    """No task can progress: no ready callback, no timer, no I/O in flight."""
    lanes = _waiting(control)
    lines = ["deadlock: no asyncio task can make progress (nothing ready, no timer, no I/O)"]
    cycle = _cycle(lanes)
    if cycle:
        parts = []
        for lane in cycle:
            held = _held(lanes, lane)
            holds = f"holds {', '.join(held)} " if held else ""
            parts.append(f"{lane.label} {holds}{_describe(lane)}")
        lines.append("wait-for cycle: " + "; ".join(parts))
    else:
        lost = [
            lane for lane in lanes if lane.waits_on is not None and not holder_of(lane.waits_on)
        ]
        if lost:
            lines.append(
                "lost wakeup: "
                + "; ".join(
                    f"{lane.label} {_describe(lane)} and no task is left to wake it"
                    for lane in lost
                )
            )
            lines.append(
                "  (the set/put/notify came before the wait, or never comes: check the state "
                "in a loop under the lock, e.g. Condition.wait_for(predicate))"
            )
        else:
            lines.append("no wait-for cycle among asyncio locks")
    for lane in lanes:
        lines.append(f"  {lane.title} {_describe(lane)}")
    lines.append("stacks:")
    lines.extend(_stacks(lanes))
    return "\n".join(lines)


def stall_message(control: TaskControl) -> str:
    """Real I/O or an executor thread did not complete within the stall bound."""
    lanes = _waiting(control)
    lines = [
        f"no asyncio task could progress for {control.stall_timeout:g} s of real time: every "
        f"task waits on real I/O or an executor thread that never completed (a peer that never "
        f"answers, a thread blocked outside the run). The run was stopped instead of hanging.",
        "stacks:",
    ]
    lines.extend(_stacks(lanes))
    return "\n".join(lines)
