"""Tasks and threads in one run: the controlled loop as a managed thread of the thread scheduler.

A run whose tasks start threads (``asyncio.to_thread``, ``loop.run_in_executor`` with the
default executor or a ``ThreadPoolExecutor`` made in the run, ``Thread.start``) runs its event
loop as the body thread of a thread-scheduler run (``sched.explore.run_once``). The executor's
worker threads are then managed threads of the same run, and every choice, which task runs next
and which thread runs next, is drawn from one strategy into one recorded stream: one token
replays both. The loop never blocks for real while it holds the baton: when nothing is ready it
waits as a managed thread (:func:`idle_managed`, :func:`select_managed`), so a worker's
``call_soon_threadsafe`` wakes it, and virtual time (one clock for loop timers and thread
sleeps) moves only when every managed thread waits.

The session finds out that a body starts threads when a run does (:func:`watch_thread_starts`);
that run is discarded and made again this way, and so is every later run of the session.
Executors made before the run (their threads outside the scheduler) and process pools are not
controlled: their jobs run in real time, and the run says so (``TaskControl.uncontrolled``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _raw
from ..errors import DeadlockError
from ..sched.runtime import BLOCKED, DONE, READY, Step
from .loop import IO_SETTLE_S, TaskControl, TaskLane, ThreadsSeen, active_control

if TYPE_CHECKING:
    from ..decider import Decider
    from ..sched.explore import RunOptions, RunResult
    from ..sched.runtime import Decision, Scheduler, ThreadRecord
    from ..sched.strategies import Strategy
    from .loop import ControlledLoop, _LoopSelector

__all__ = [
    "MixedLog",
    "idle_managed",
    "outside_executor",
    "run_mixed",
    "select_managed",
    "shutdown_executors",
    "shutdown_run_executors",
    "watch_thread_starts",
]

Managed = tuple["Scheduler", "ThreadRecord"]
TRACE_STEPS = 200
LOOP_LANE = "event loop (callbacks, cleanup)"  # the loop thread outside any task
POLL_S = 0.05


# -- finding out that a body starts threads --------------------------------------------------------


def watch_thread_starts() -> Callable[[], None]:
    """Patch ``Thread.start`` for the test: a thread started while an asyncio run is active and
    not yet under the thread scheduler marks the run (``threads_seen``). Returns the undo."""
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        control = active_control()
        if (
            control is not None
            and control.sched is None
            and not control.cleaning
            and _on_the_loop(control)
        ):
            control.threads_seen = True
            raise ThreadsSeen  # before the thread runs free
        original(self)

    start.__wrapped__ = original  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]

    def undo() -> None:
        threading.Thread.start = original  # type: ignore[method-assign]

    return undo


def _on_the_loop(control: TaskControl) -> bool:
    """Whether the caller runs on the run's loop (a task or a callback), not in a thread
    outside the run (a server's handler thread started while the run is active)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return control.loop is None or loop is control.loop


def outside_executor(control: TaskControl, executor: object) -> bool:
    """Whether a job given to ``executor`` runs in a thread the scheduler does not manage (an
    executor made before the run, or not a thread pool); such a job is named in
    ``control.uncontrolled``."""
    loop = control.loop
    if executor is None:
        executor = getattr(loop, "_default_executor", None)
        if executor is None:
            return False  # made now, by the managed loop thread: its threads are managed
    sched: Scheduler = control.sched
    why = ""
    if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
        why = f"a job of {type(executor).__name__} (not a thread pool) runs outside the scheduler"
    else:
        threads = list(getattr(executor, "_threads", ()))
        foreign = [t for t in threads if t.is_alive() and sched.record_of(t) is None]
        made_before = type(getattr(executor, "_work_queue", None)).__name__ == "SimpleQueue"
        if foreign or made_before:
            why = (
                "a job of a ThreadPoolExecutor made before the run ran in a thread the scheduler "
                "does not manage: make the executor inside the explored body (or use "
                "asyncio.to_thread / the loop's default executor)"
            )
    if not why:
        return False
    if why not in control.uncontrolled:
        control.uncontrolled.append(why)
    return True


# -- the loop waiting as a managed thread ----------------------------------------------------------


def _others_busy(sched: Scheduler, me: ThreadRecord, control: TaskControl) -> bool:
    """Whether a managed thread other than the loop's may still do something (run, wake from a
    timed wait, come back from real I/O), or the test's clock has something due."""
    for t in sched.threads:
        if t is me or t.state == DONE:
            continue
        if t.state != BLOCKED or t.deadline is not None or (t.pred is not None and t.pred()):
            return True
    clock = control.clock
    return clock is not None and clock.next_due() is not None


def loop_step(managed: Managed) -> None:
    """Before each step of the loop: a scheduling point of the loop thread when another managed
    thread can run, so a thread may run between any two task steps (not only where the loop
    thread touches a threading primitive)."""
    sched, me = managed
    for t in sched.threads:
        if t is not me and (
            t.state == READY or (t.state == BLOCKED and t.pred is not None and t.pred())
        ):
            sched.point(me, "loop step", site=me.site)
            return


def _woken(ready: deque[asyncio.Handle]) -> Callable[[], bool]:
    # A worker hands its result over with call_soon_threadsafe, which appends to the ready queue
    # before it writes the wake-up byte.
    return lambda: bool(ready)


def select_managed(
    loop: ControlledLoop, selector: _LoopSelector, managed: Managed, timeout: float | None
) -> list[Any]:
    """The loop's ``select`` when it runs as a managed thread (cleanup, ``asyncio`` internals):
    ready file descriptors now, else a managed wait until a callback is queued or ``timeout``
    virtual seconds pass; real I/O in flight is waited for outside the baton."""
    events = selector.raw_select(0)
    if events or timeout == 0:
        return events
    sched, me = managed
    from .loop import _watched_io

    if _watched_io(loop):
        bound = POLL_S if timeout is None else min(timeout, POLL_S)
        with sched.outside(me, "select (real I/O)"):
            return selector.raw_select(bound)
    sched.block(me, "select", None, _woken(loop._ready), timeout)  # type: ignore[attr-defined]
    return selector.raw_select(0)


def idle_managed(
    loop: ControlledLoop,
    control: TaskControl,
    managed: Managed,
    scheduled: list[asyncio.TimerHandle],
    ready: deque[asyncio.Handle],
) -> None:
    """Nothing is ready on a loop that runs as a managed thread: wait as a managed thread for a
    worker's result or the next timer (the scheduler moves virtual time when every thread
    waits), wait outside the baton for real I/O, or report that no task can progress."""
    from .loop import _deadlock_message, _stall_message, _watched_io

    sched, me = managed
    started = _raw.monotonic()
    while not ready:
        if _watched_io(loop) or control.outside_jobs > 0:
            # Real I/O, or a thread the scheduler does not manage: its completion is real time.
            with sched.outside(me, "select (real I/O)"):
                if loop._fl_poll(IO_SETTLE_S, raw=True):
                    continue
            if ready:
                break
            if not scheduled and not _others_busy(sched, me, control):
                waited = _raw.monotonic() - started
                if waited > control.stall_timeout:
                    control.stalled = True
                    raise DeadlockError(_stall_message(control))
                continue
        if scheduled:
            timeout: float | None = max(0.0, scheduled[0]._when - control.now())  # type: ignore[attr-defined]
        elif control.executor_jobs > 0 or _others_busy(sched, me, control):
            timeout = None  # a worker's result, or a deadlock the scheduler reports
        elif _watched_io(loop) or control.outside_jobs > 0:
            continue
        else:
            raise DeadlockError(_deadlock_message(control))
        woke = sched.block(me, "loop idle", None, _woken(ready), timeout)
        loop._fl_poll(0, raw=True)
        if not woke and not ready:
            return  # the next timer is due: virtual time moved to it


def shutdown_run_executors(control: TaskControl) -> None:
    """:func:`shutdown_executors` for a loop that outlives the run (pytest-asyncio's)."""
    from ..sched.runtime import current

    loop, managed = control.loop, current()
    if loop is not None and managed is not None and not loop.is_closed():
        shutdown_executors(loop, managed)


def shutdown_executors(loop: ControlledLoop, managed: Managed) -> None:
    """At the end of a run: shut down the loop's default executor and every thread pool made in
    the run that is still up, joining their managed threads (part of the schedule), so no
    worker outlives the run or is left for the scheduler to abort."""
    sched, me = managed
    executors: list[concurrent.futures.ThreadPoolExecutor] = []
    default = getattr(loop, "_default_executor", None)
    if isinstance(default, concurrent.futures.ThreadPoolExecutor):
        executors.append(default)
    loop._default_executor = None  # type: ignore[attr-defined]  # a loop that outlives the run
    for rec in sched.threads:
        thread = rec.thread
        if rec is me or rec.state == DONE or thread is None:
            continue
        args = getattr(thread, "_args", ())
        ref = args[0] if args else None
        executor = ref() if callable(ref) else None
        if (
            isinstance(executor, concurrent.futures.ThreadPoolExecutor)
            and executor not in executors
        ):
            executors.append(executor)
    for executor in executors:
        executor.shutdown(wait=True)


# -- the run's log: tasks and threads in one swimlane ----------------------------------------------


class ThreadLane:
    """A managed thread started from the run's tasks, as the swimlane shows it."""

    def __init__(self, index: int, rec: ThreadRecord, name: str = "") -> None:
        self.index = index
        self.rec = rec
        self.name = name

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        name = self.rec.thread.name if self.rec.thread is not None else "?"
        return f"thread {self.rec.label} ({name})"

    @property
    def label(self) -> str:
        return f"thread {self.rec.label}"

    def __repr__(self) -> str:
        return f"<{self.title}>"


def _note_loop_steps(
    control: TaskControl, sched: Scheduler, at: dict[int, TaskLane | None]
) -> None:
    """Note, for each scheduling point of the loop thread, the task it ran in (None: a plain
    loop callback), so the swimlane shows it in that task's lane."""
    note = sched._note

    def noted(me: ThreadRecord, op: str, site: str) -> None:
        note(me, op, site)
        if me.index == 0:
            try:
                task = asyncio.current_task()
            except RuntimeError:
                task = None
            at[sched.steps] = control.lane_of_task(task) if task is not None else None

    setattr(sched, "_note", noted)  # noqa: B010  # this run's scheduler only


class MixedLog:
    """What a run of tasks and threads leaves for shrinking and reports: the decisions of both
    (one list, in the order they were made), and one trace whose lanes are the tasks and then
    the threads (steps of the loop thread itself belong to the task that was running)."""

    def __init__(
        self, control: TaskControl, sched: Scheduler, at: dict[int, TaskLane | None]
    ) -> None:
        self.control = control
        self.sched = sched
        self.decisions: list[Decision] = sched.decisions
        self.preempted_at: set[int] = sched.preempted_at
        self.steps: int = sched.steps
        self.stalled: bool = control.stalled or sched.stalled
        lanes: list[TaskLane | ThreadLane] = list(control.threads)
        index: dict[int, int] = {}
        for rec in sched.threads[1:]:
            index[rec.index] = len(lanes)
            lanes.append(ThreadLane(len(lanes), rec))
        self.threads: Sequence[TaskLane | ThreadLane] = lanes
        loop_lane: ThreadLane | None = None
        steps = sorted([*control.trace, *sched.trace], key=lambda s: s.number)
        trace: list[Step] = []
        for step in steps:
            if step.number in at:  # a step of the loop thread: in a task, or in a callback
                task = at[step.number]
                if task is None and loop_lane is None:
                    loop_lane = ThreadLane(len(lanes), sched.threads[0], LOOP_LANE)
                    lanes.append(loop_lane)
                lane = task if task is not None else loop_lane
                assert lane is not None
                step = step._replace(thread=lane.index)
            elif step.thread in index and step not in control.trace:
                step = step._replace(thread=index[step.thread])
            trace.append(step)
        self.trace: deque[Step] = deque(trace, maxlen=TRACE_STEPS)
        who = sched.failure_thread
        self.failure_thread: TaskLane | ThreadLane | None = control.failure_thread
        if who is not None and who.index in index:
            self.failure_thread = lanes[index[who.index]]


def run_mixed(
    body: Callable[[], BaseException | None],
    control: TaskControl,
    decider: Decider,
    strategy: Strategy,
    options: RunOptions,
) -> RunResult:
    """One run of an async body whose loop is the body thread of a thread-scheduler run."""
    from ..sched.explore import RunResult, run_once

    errors: list[BaseException] = []
    at: dict[int, TaskLane | None] = {}

    def managed_body() -> None:
        from ..sched.runtime import current

        ctx = current()
        assert ctx is not None
        control.link(ctx[0])
        _note_loop_steps(control, ctx[0], at)
        try:
            failure = body()
        except BaseException as exc:  # a misuse (not a failure of the run): raised to the caller
            errors.append(exc)
            return
        if failure is not None:
            raise failure

    result = run_once(managed_body, decider, strategy, options)
    if errors:
        raise errors[0]
    return RunResult(decider, MixedLog(control, result.sched, at), result.failure)  # type: ignore[arg-type]
