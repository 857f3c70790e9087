"""The controlled event loop: one ready callback at a time, chosen by the run's strategy.

:class:`ControlledLoop` is a ``SelectorEventLoop`` whose ``_run_once`` runs a single ready handle
per iteration. When several are ready (task steps, wake-ups, plain callbacks), the strategy of
the active :class:`TaskControl` picks one and records the index in the run's recorded ``sched``
stream, so a replay token reproduces the order. Alternative 0 is always "the task that ran last
goes on" when it is ready, so a choice ``k > 0`` is a preemption, as for threads.

Time is virtual while a control is active: ``loop.time()`` is the control's clock (the test's
``faultline.clock`` when one runs). When nothing is ready, the loop jumps to the next timer; it
first gives real I/O in flight (a connected socket it watches, a thread of ``run_in_executor``)
up to :data:`IO_SETTLE_S` of real time to arrive, and waits for executor threads up to the
stall bound. With no ready handle, no timer and no I/O in flight, no task can ever progress: the
loop raises :class:`~pytest_faultline.DeadlockError` with the tasks' wait-for graph.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import os
import selectors
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .. import _raw
from ..errors import DeadlockError, FaultlineError
from ..sched.runtime import Decision, Step
from .io import IO_SETTLE_S, IoGate, waiting_task

if TYPE_CHECKING:
    from types import FrameType

    from ..decider import Stream
    from ..sched.strategies import Strategy

__all__ = ["IO_SETTLE_S", "ControlledLoop", "TaskControl", "TaskLane", "active_control"]

US_PER_S = 1_000_000
DUE_SLACK_S = 1e-6  # timers this close are due: the test's clock counts microseconds
TRACE_STEPS = 200
CALLBACKS = "loop callbacks"

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))
_internal: dict[str, bool] = {}


def is_internal(filename: str) -> bool:
    """Frames of pytest-faultline and asyncio (not the user's)."""
    known = _internal.get(filename)
    if known is None:
        path = os.path.abspath(filename)
        known = _internal[filename] = path.startswith((_PKG_DIR, _ASYNCIO_DIR))
    return known


def _frames(coro: object) -> list[FrameType]:
    """The frames of a suspended coroutine chain, outermost first."""
    frames: list[FrameType] = []
    seen = 0
    while coro is not None and seen < 64:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def task_site(task: asyncio.Task[Any]) -> str:
    """Where ``task`` is suspended: the innermost frame of the user's code."""
    for frame in reversed(_frames(task.get_coro())):
        if not is_internal(frame.f_code.co_filename):
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    return "?"


def task_stack(task: asyncio.Task[Any], limit: int = 8) -> list[str]:
    """The user's frames of a suspended task, outermost first."""
    lines = []
    for frame in _frames(task.get_coro()):
        if is_internal(frame.f_code.co_filename):
            continue
        code = frame.f_code
        lines.append(f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}")
    return lines[-limit:]


class TaskLane:
    """A task (or the lane of plain loop callbacks) as the strategy and the reports see it."""

    def __init__(self, index: int, task: asyncio.Task[Any] | None, name: str) -> None:
        self.index = index
        self.task = task
        self.name = name
        self.waits_on: object = None  # the asyncio primitive it is blocked on, if known

    @property
    def title(self) -> str:
        return f"T{self.index} ({self.name})" if self.task is not None else CALLBACKS

    @property
    def label(self) -> str:
        return f"T{self.index}" if self.task is not None else "loop"

    def __repr__(self) -> str:
        return f"<{self.title}>"


class TaskControl:
    """One run on a controlled loop: its strategy, decisions, lanes, trace and virtual time.

    It has the shape the exploration session reads (``decisions``, ``trace``, ``steps``,
    ``stalled``, ``threads``, ``failure_thread``) and the ``stream`` the strategies record to.
    """

    def __init__(
        self,
        strategy: Strategy,
        stream: Stream,
        *,
        stall_timeout: float,
        max_steps: int,
        clock: Any = None,
    ) -> None:
        self.strategy = strategy
        self.stream = stream
        self.stall_timeout = stall_timeout
        self.max_steps = max_steps
        self.clock = clock
        self.decisions: list[Decision] = []
        self.trace: deque[Step] = deque(maxlen=TRACE_STEPS)
        self.preempted_at: set[int] = set()  # steps after which the running task was switched
        self.steps = 0
        self.stalled = False
        self.threads: list[TaskLane] = []
        self.failure_thread: TaskLane | None = None
        self.current: TaskLane | None = None
        self.jumps = 0
        self._lanes: dict[asyncio.Task[Any], TaskLane] = {}
        self._callbacks = TaskLane(-1, None, CALLBACKS)  # not a lane of the swimlane
        self._vtime = 0.0
        self._base = _raw.monotonic()
        self.executor_jobs = 0
        self.resources = 0  # asyncio primitives created in the run, for their names
        self.cleaning = False  # the run is over: cancelled tasks unwind in FIFO order
        self.loop: ControlledLoop | None = None  # the loop that ran this control's steps

    # -- time --------------------------------------------------------------------------------

    def now(self) -> float:
        if self.clock is not None:
            return float(self.clock.monotonic())
        return self._base + self._vtime

    def advance_to(self, when: float) -> None:
        delta = when - self.now()
        if delta <= 0:
            return
        self.jumps += 1
        if self.clock is not None:
            # The clock counts whole microseconds (datetime): round up so the timer is due.
            self.clock.advance(math.ceil(delta * US_PER_S) / US_PER_S, wait=False)
        else:
            self._vtime += delta

    # -- lanes -------------------------------------------------------------------------------

    def lane_of_task(self, task: asyncio.Task[Any]) -> TaskLane:
        lane = self._lanes.get(task)
        if lane is None:
            coro = task.get_coro()
            name = getattr(coro, "__qualname__", None) or task.get_name()
            lane = TaskLane(len(self.threads), task, "main" if not self.threads else name)
            self.threads.append(lane)
            self._lanes[task] = lane
        return lane

    def lane_of(self, handle: asyncio.Handle) -> TaskLane:
        owner = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
        if isinstance(owner, asyncio.Task):
            return self.lane_of_task(owner)
        if self.loop is not None and handle in self.loop._fl_gate.handles:
            # a socket's data for a task awaiting it: the next step of that task
            task = waiting_task(handle)
            if task is not None:
                return self.lane_of_task(task)
        return self._callbacks

    def lanes(self) -> list[TaskLane]:
        return list(self.threads)

    # -- choosing ----------------------------------------------------------------------------

    def choose(self, ready: list[asyncio.Handle]) -> int:
        """The index in ``ready`` (the loop's ready queue, live handles) of the one to run.

        Plain callbacks (future callbacks, transport events, ``call_soon``) run first and in
        their order: asyncio's own bookkeeping relies on it (a future's callbacks run in the
        order they were added). The choice is which task runs next: each ready task is one
        alternative (its oldest handle), the task that ran last first.
        """
        first: dict[TaskLane, int] = {}
        for i, handle in enumerate(ready):
            lane = self.lane_of(handle)
            if lane.task is None:
                return self._took(ready, i, lane, False)
            first.setdefault(lane, i)
        alts = list(first)
        current_ready = self.current is not None and self.current in first
        if current_ready:
            assert self.current is not None
            alts.remove(self.current)
            alts.insert(0, self.current)
        pick = 0
        if len(alts) > 1:
            me = self.current if self.current is not None else alts[0]
            pick = self.strategy.pick(self, me, alts)
            if not 0 <= pick < len(alts):
                pick = 0
            self.decisions.append(Decision(len(alts), pick, current_ready))
            if current_ready and pick > 0:
                self.preempted_at.add(self.steps)  # the swimlane marks the step
        return self._took(ready, first[alts[pick]], alts[pick], len(alts) > 1)

    def _took(self, ready: list[asyncio.Handle], i: int, lane: TaskLane, chosen: bool) -> int:
        self.steps += 1
        if self.steps > self.max_steps:
            raise FaultlineError(
                f"the asyncio run took more than max_steps={self.max_steps} loop steps; a task "
                f"loops without end (raise max_steps if the body is really that long)"
            )
        if lane.task is not None:
            if chosen or lane is not self.current:
                self.trace.append(Step(self.steps, lane.index, "resume", task_site(lane.task)))
            self.current = lane
        return i


_ACTIVE: list[TaskControl | None] = [None]


def active_control() -> TaskControl | None:
    """The control of the asyncio run in progress, if any."""
    return _ACTIVE[0]


def set_active(control: TaskControl | None) -> TaskControl | None:
    previous = _ACTIVE[0]
    _ACTIVE[0] = control
    return previous


def _watched_io(loop: ControlledLoop) -> bool:
    """Whether the loop watches a connected socket (not its own wake-up pipe, not a listening
    socket that may wait for ever)."""
    ssock = getattr(loop, "_ssock", None)
    own = ssock.fileno() if ssock is not None else -1
    for key in loop._selector.get_map().values():  # type: ignore[attr-defined]
        if key.fd == own:
            continue
        reader, writer = key.data
        for handle in (reader, writer):
            if handle is None:
                continue
            name = getattr(handle._callback, "__name__", "")
            if name != "_accept_connection":
                return True
    return False


class ControlledLoop(asyncio.SelectorEventLoop):
    """An event loop whose order of ready callbacks and whose time belong to the active
    :class:`TaskControl` (plain asyncio behaviour when none is active)."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        self._fl_gate = IoGate(self._selector)  # type: ignore[attr-defined]
        # what a run opened, closed at its end whatever became of the code that opened it
        self._fl_transports: list[asyncio.BaseTransport] = []
        self._fl_servers: list[asyncio.AbstractServer] = []

    def _make_socket_transport(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        transport = super()._make_socket_transport(sock, *args, **kwargs)  # type: ignore[misc]
        self._fl_transports.append(transport)
        self._fl_gate.watch(transport, sock, server=kwargs.get("server"))
        return transport

    # (the base class registers its wake-up pipe before the gate exists)
    def _add_reader(self, fd: Any, *args: Any) -> Any:
        if hasattr(self, "_fl_gate"):
            self._fl_gate.registered(_fd(fd))
        return super()._add_reader(fd, *args)  # type: ignore[misc]

    def _add_writer(self, fd: Any, *args: Any) -> Any:
        self._fl_gate.registered(_fd(fd))
        return super()._add_writer(fd, *args)  # type: ignore[misc]

    def _remove_reader(self, fd: Any) -> bool:
        removed: bool = super()._remove_reader(fd)  # type: ignore[misc]
        if hasattr(self, "_fl_gate"):
            self._fl_gate.unregistered(_fd(fd))
        return removed

    def _remove_writer(self, fd: Any) -> bool:
        removed: bool = super()._remove_writer(fd)  # type: ignore[misc]
        self._fl_gate.unregistered(_fd(fd))
        return removed

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        server = await super().create_server(*args, **kwargs)
        self._fl_servers.append(server)
        self._fl_gate.serve(server)
        return server

    def close_leftovers(self) -> None:
        """Close the servers and connections a run left open."""
        for server in self._fl_servers:
            server.close()
        for transport in self._fl_transports:
            if not transport.is_closing():
                transport.abort()  # type: ignore[attr-defined]
        self._fl_servers.clear()
        self._fl_transports.clear()

    def time(self) -> float:
        control = _ACTIVE[0]
        if control is None or control.cleaning:
            return super().time()
        return control.now()

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        control = _ACTIVE[0]
        if control is not None:
            control.executor_jobs += 1

            def done(_: object, control: TaskControl = control) -> None:
                control.executor_jobs -= 1

            future.add_done_callback(done)
        return future

    def _run_once(self) -> None:
        control = _ACTIVE[0]
        if control is None or control.cleaning:
            super()._run_once()  # type: ignore[misc]
            return
        control.loop = self
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            handle = heapq.heappop(scheduled)
            handle._scheduled = False  # type: ignore[attr-defined]
        ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        # Real I/O is taken in at points of the schedule, not whenever it arrives (aio/io.py).
        if self._fl_gate.due(ready):
            self._fl_poll(0)
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            self._fl_idle(control, scheduled, ready)
        end = self.time() + max(self._clock_resolution, DUE_SLACK_S)  # type: ignore[attr-defined]
        while scheduled and scheduled[0]._when < end:  # type: ignore[attr-defined]
            handle = heapq.heappop(scheduled)
            handle._scheduled = False  # type: ignore[attr-defined]
            ready.append(handle)
        live = [h for h in ready if not h._cancelled]
        if not live:
            ready.clear()
            return
        chosen = live[control.choose(live)]
        ready.remove(chosen)
        if chosen in self._fl_gate.handles:
            self._fl_gate.ran(chosen)
        chosen._run()

    def _fl_poll(self, timeout: float) -> int:
        ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        before = len(ready)
        events = self._fl_gate.poll(timeout, ready)
        self._process_events(events)  # type: ignore[attr-defined]
        self._fl_gate.queued(list(ready)[before:])
        return len(events)

    def _fl_idle(
        self,
        control: TaskControl,
        scheduled: list[asyncio.TimerHandle],
        ready: deque[asyncio.Handle],
    ) -> None:
        """Nothing is ready: wait for I/O in flight, jump to the next timer, or report that
        no task can progress."""
        started = _raw.monotonic()
        while not ready:
            io = _watched_io(self) or control.executor_jobs > 0
            if scheduled and not control.executor_jobs:
                if io and self._fl_poll(IO_SETTLE_S):
                    continue
                control.advance_to(scheduled[0]._when)  # type: ignore[attr-defined]
                return
            if not io:
                if self._fl_poll(0):
                    continue
                raise DeadlockError(_deadlock_message(control))
            waited = _raw.monotonic() - started
            if waited > control.stall_timeout:
                control.stalled = True
                raise DeadlockError(_stall_message(control))
            self._fl_poll(min(0.05, control.stall_timeout - waited))


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


def _deadlock_message(control: TaskControl) -> str:
    from .report import deadlock_message

    return deadlock_message(control)


def _stall_message(control: TaskControl) -> str:
    from .report import stall_message

    return stall_message(control)


def run_controlled(
    main: Callable[[], Coroutine[Any, Any, object]], control: TaskControl
) -> BaseException | None:
    """Run ``main()`` to completion on a fresh controlled loop under ``control``; cancel the
    tasks it leaves, close the loop, and return the failure (None if it passed)."""
    loop = ControlledLoop()
    previous_loop = _current_loop()
    previous = set_active(control)
    failure: BaseException | None = None
    try:
        asyncio.set_event_loop(loop)
        coro = main()
        if not asyncio.iscoroutine(coro):
            raise FaultlineError(
                f"the asyncio body must return a coroutine (an async def function called), "
                f"got {type(coro).__name__}"
            )
        task = loop.create_task(coro)
        control.lane_of_task(task)
        try:
            loop.run_until_complete(task)
        except BaseException as exc:
            failure = exc
            if failure is not None and control.failure_thread is None:
                control.failure_thread = control.current
    finally:
        control.cleaning = True
        try:
            _finish(loop)
        finally:
            set_active(previous)
            asyncio.set_event_loop(previous_loop)
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    return failure


def _current_loop() -> asyncio.AbstractEventLoop | None:
    """The thread's current event loop, if one is set. Not ``policy.get_event_loop()``: on the
    main thread of 3.10/3.11 that creates (and leaks) a loop when none is set."""
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def _finish(loop: ControlledLoop) -> None:
    """Cancel what the run left pending, let it unwind (bounded), then close the loop."""
    try:
        loop.set_exception_handler(_quiet_cancelled)
        for _ in range(3):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            gathered = asyncio.gather(*pending, return_exceptions=True)
            loop.run_until_complete(asyncio.wait_for(gathered, UNWIND_BOUND_S))
    except (TimeoutError, asyncio.CancelledError, RuntimeError):
        pass
    try:
        loop.close_leftovers()
        loop.run_until_complete(asyncio.sleep(0))  # connection_lost callbacks run
        loop.run_until_complete(loop.shutdown_asyncgens())
        if sys.version_info >= (3, 12):
            loop.run_until_complete(loop.shutdown_default_executor(UNWIND_BOUND_S))
        else:
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


UNWIND_BOUND_S = 2.0


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """While a run's leftover tasks are cancelled, their cancellation is not an error."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)
