"""A swept body under the thread scheduler: the scheduling points of its threads are sites.

When a sweep's kinds include a scheduled one (``preempt``, ``preempt_step``), every run of the
body (the recording run too) goes through the thread scheduler with :class:`SweepSchedule`, a
strategy that never preempts on its own: the same body gives the same schedule, so the n-th
arrival at a scheduling point names the same place in every run, up to the planned fault. Each
decision where the running thread could go on and another could run is a ``thread`` site; a
planned fault there switches to another thread (drawn from the run's seed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _points
from ..sched import runtime
from ..sched.explore import RunOptions, run_once
from .sites import THREAD, Site

if TYPE_CHECKING:
    import random

    from .._context import FaultContext
    from ..decider import Decider
    from ..sched.runtime import Decision, Scheduler, ThreadRecord
    from ._probe import Probe

__all__ = ["SweepSchedule", "run_scheduled", "scheduled_options"]

PREEMPT_STREAM = "sweep.preempt"


class SweepSchedule:
    """The thread scheduler's strategy in a scheduled sweep run: the running thread goes on
    while it can, a blocked one hands over to the first ready thread, except where the probe's
    planned fault says otherwise. Its choices follow from the faults and the seed, so the
    sweep's token (faults and seed) replays the schedule; nothing is recorded per step."""

    name = "sweep"
    exhausted = False

    def __init__(self, probe: Probe, decider: Decider) -> None:
        self.probe = probe
        self.draws = decider.stream(PREEMPT_STREAM)
        self.hits: dict[tuple[str, str, str], int] = {}
        self.back_to: ThreadRecord | None = None  # the thread a one-step switch returns to

    def begin(self, rng: random.Random) -> None:
        pass

    def end(self, decisions: list[Decision]) -> None:
        pass

    def pick(self, sched: Scheduler, me: ThreadRecord, alts: Sequence[ThreadRecord]) -> int:
        back = self.back_to
        if back is not None:
            if back in alts:
                self.back_to = None
                return alts.index(back)
            if back.state == runtime.DONE:
                self.back_to = None
        if alts[0] is not me:  # ``me`` cannot go on: the first thread that can
            return 0
        step = sched.trace[-1]
        probe = self.probe
        with probe._lock:
            stem = (step.op, me.title, step.site)
            hit = self.hits[stem] = self.hits.get(stem, 0) + 1
            site = Site(THREAD, step.op, me.title, hit, step.site if probe.recording else "")
            fault = probe._arrive(site, lambda f: f.hit == hit)
        if fault is None:
            return 0
        probe._record(fault, site)
        index, back_after = probe.kinds[fault.kind].switch(len(alts) - 1, self.draws.choice)
        if back_after:
            self.back_to = me
        return 1 + index


def scheduled_options(
    context: FaultContext, fn: Callable[[], object], options: Any = None
) -> RunOptions:
    """How each scheduled run is driven: as ``thread_preemption`` drives it, at sync
    granularity (primitives imported by name in the test's module and ``fn``'s are managed)."""
    from ..exploring import DEFAULT_MAX_STEPS, DEFAULT_STALL_S
    from ..sched.api import _namespaces, _own_namespace, _prepare
    from ..sched.explore import test_namespace
    from ..sched.integration import active_clock

    _prepare(context)
    return RunOptions(
        namespaces=_namespaces([], [test_namespace(context), _own_namespace(fn)]),
        stall_timeout=float(DEFAULT_STALL_S),
        max_steps=DEFAULT_MAX_STEPS,
        clock=active_clock(context),
    )


def run_scheduled(
    fn: Callable[[], object], probe: Probe, decider: Decider, options: RunOptions
) -> BaseException | None:
    """Run ``fn`` once under the scheduler with :class:`SweepSchedule`; its failure, if any
    (a deadlock is a :class:`~pytest_faultline.DeadlockError`)."""

    def body() -> object:
        # The scheduler's own observer makes points scheduling points; the probe sees them first.
        scheduler_observer = _points.set_observer(None)
        _points.set_observer(_chain(probe.on_point, scheduler_observer))
        return fn()

    from .api import _chain

    # run_once names the search strategies it ships; this one has their shape (begin, pick, end).
    strategy: Any = SweepSchedule(probe, decider)
    result = run_once(body, decider, strategy, options)
    return result.failure
