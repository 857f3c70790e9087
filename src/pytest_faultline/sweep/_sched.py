"""A swept body under the thread scheduler (or, for a coroutine function, on the controlled
event loop): the places where one of its threads or tasks could lose its turn are sites.

When a sweep's kinds include a scheduled one (``preempt``, ``preempt_step``), every run of the
body (the recording run too) goes through the scheduler with :class:`SweepSchedule`, a strategy
that never preempts on its own: the same body gives the same schedule, so the n-th arrival at a
scheduling point names the same place in every run, up to the planned fault. Each decision where
the running thread (task) could go on and another could run is a ``thread`` site; a planned
fault there switches to another one (drawn from the run's seed).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _points
from ..sched import runtime
from ..sched.explore import SCHED_STREAM, RunOptions, run_once
from .sites import THREAD, Site

if TYPE_CHECKING:
    import random

    from .._context import FaultContext
    from ..decider import Decider
    from ..sched.runtime import Decision
    from ._probe import Probe

__all__ = ["ScheduledRuns", "SweepSchedule"]

PREEMPT_STREAM = "sweep.preempt"


class SweepSchedule:
    """The scheduler's strategy in a scheduled sweep run: the running thread goes on while it
    can and a blocked one hands over to the first ready thread (tasks run in asyncio's own
    order, the first ready first), except where the probe's planned fault says otherwise. Its
    choices follow from the faults and the seed, so the sweep's token (faults and seed) replays
    the schedule; nothing is recorded per step."""

    name = "sweep"
    exhausted = False

    def __init__(self, probe: Probe, decider: Decider) -> None:
        self.probe = probe
        self.draws = decider.stream(PREEMPT_STREAM)
        self.hits: dict[tuple[str, str, str], int] = {}
        self.back_to: Any = None  # the thread (task) a one-step switch returns to
        self.held_back: Any = None  # the one preempted, until the others cannot run

    def begin(self, rng: random.Random) -> None:
        pass

    def end(self, decisions: list[Decision]) -> None:
        pass

    def pick(self, sched: Any, me: Any, alts: Sequence[Any]) -> int:
        """``sched``/``me``/``alts``: the thread scheduler and its thread records, or a
        controlled loop's task control and its task lanes."""
        tasks = getattr(me, "task", None) is not None
        if me is self.held_back:
            self.held_back = None  # it runs again: the others had nothing left to do
        back = self.back_to
        if back is not None:
            if back in alts:
                self.back_to = None
                return alts.index(back)
            if _finished(back):
                self.back_to = None
        if not tasks and alts[0] is not me:  # ``me`` cannot go on: the first thread that can
            return self._unless_held_back(alts, 0)
        natural = _fifo(sched, alts) if tasks else 0  # asyncio's own order; the thread goes on
        lane = alts[natural]
        op, location = _where(sched, lane)
        probe = self.probe
        with probe._lock:
            stem = (op, lane.title, location)
            hit = self.hits[stem] = self.hits.get(stem, 0) + 1
            site = Site(THREAD, op, lane.title, hit, location if probe.recording else "")
            fault = probe._arrive(site, lambda f: f.hit == hit)
        if fault is None:
            return self._unless_held_back(alts, natural)
        probe._record(fault, site)
        others = [i for i in range(len(alts)) if i != natural]
        index, back_after = probe.kinds[fault.kind].switch(len(others), self.draws.choice)
        if back_after:
            self.back_to = lane
        else:
            self.held_back = lane
        return others[index]

    def _unless_held_back(self, alts: Sequence[Any], k: int) -> int:
        """``k``, unless it is the preempted one and another can run: then the first other."""
        held = self.held_back
        if held is None or alts[k] is not held:
            return k
        return next(i for i in range(len(alts)) if alts[i] is not held)


def _fifo(control: Any, alts: Sequence[Any]) -> int:
    """The lane plain asyncio would run next: the one whose handle is first in the ready queue."""
    loop = control.loop
    for handle in loop._ready if loop is not None else ():
        if handle._cancelled:
            continue
        lane = control.lane_of(handle)
        if lane in alts:
            return alts.index(lane)
    return 0


def _where(sched: Any, me: Any) -> tuple[str, str]:
    """The operation and ``file:line`` of the scheduling point ``me`` is at."""
    task = getattr(me, "task", None)
    if task is not None:  # a task, suspended at an await
        from ..aio.loop import task_site

        return "await", task_site(task)
    step = sched.trace[-1]  # the thread's operation, noted just before the choice
    return str(step.op), str(step.site)


def _finished(lane: Any) -> bool:
    task = getattr(lane, "task", None)
    if task is not None:
        return bool(task.done())
    return bool(lane.state == runtime.DONE)


class _Coroutine(Exception):
    """The body returned a coroutine: its runs are task schedules, not thread schedules."""


class ScheduledRuns:
    """Runs a swept body under the thread scheduler, or, when it is a coroutine function (or
    returns a coroutine, as an ``async def`` test's body does), on the controlled event loop."""

    def __init__(self, context: FaultContext, fn: Callable[[], object]) -> None:
        from ..exploring import DEFAULT_MAX_STEPS, DEFAULT_STALL_S
        from ..sched.api import _namespaces, _own_namespace, _prepare
        from ..sched.explore import test_namespace
        from ..sched.integration import active_clock

        self.context = context
        self.fn = fn
        self.tasks = False
        # As thread_preemption drives a run, at sync granularity (primitives imported by name in
        # the test's module and in fn's are managed too).
        self.options = RunOptions(
            namespaces=_namespaces([], [test_namespace(context), _own_namespace(fn)]),
            stall_timeout=float(DEFAULT_STALL_S),
            max_steps=DEFAULT_MAX_STEPS,
            clock=active_clock(context),
        )
        _prepare(context)
        if inspect.iscoroutinefunction(fn):
            self._use_tasks()

    def _use_tasks(self) -> None:
        from ..aio.api import _prepare as prepare_tasks
        from ..exploring import ExploreOptions

        prepare_tasks(self.context, ExploreOptions())  # asyncio primitives: scheduling points
        self.tasks = True

    def run(self, probe: Probe, decider: Decider) -> BaseException | None:
        """Run the body once with :class:`SweepSchedule`; its failure, if any (a deadlock is a
        :class:`~pytest_faultline.DeadlockError`)."""
        if not self.tasks:
            failure = self._threads(probe, decider)
            if not isinstance(failure, _Coroutine):
                return failure
            self._use_tasks()  # (nothing of the body ran: a coroutine runs when awaited)
        from ..aio.api import run_body
        from ..aio.loop import TaskControl

        control = TaskControl(
            self._strategy(probe, decider),
            decider.stream(SCHED_STREAM, recorded=True),
            stall_timeout=self.options.stall_timeout,
            max_steps=self.options.max_steps,
            clock=self.options.clock,
        )
        return run_body(self.fn, control)

    def _strategy(self, probe: Probe, decider: Decider) -> Any:
        # The schedulers name the search strategies they ship; this one has their shape.
        return SweepSchedule(probe, decider)

    def _threads(self, probe: Probe, decider: Decider) -> BaseException | None:
        from .api import _chain

        fn = self.fn

        def body() -> object:
            # The scheduler's observer makes points scheduling points; the probe sees them first.
            scheduler_observer = _points.set_observer(None)
            _points.set_observer(_chain(probe.on_point, scheduler_observer))
            result = fn()
            if inspect.iscoroutine(result):
                result.close()
                raise _Coroutine
            return result

        return run_once(body, decider, self._strategy(probe, decider), self.options).failure
