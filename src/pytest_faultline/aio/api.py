"""``faultline.explore`` / ``faultline.replay`` of coroutine functions and the
``task_interleaving`` scenario: the same search / settle / conclude as thread schedules
(:class:`~pytest_faultline.sched.session.ExplorationSession`), each run on a controlled loop."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._context import EventKind, ServiceKey
from ..decider import Decider
from ..errors import DeadlockError, FaultlineError, ScenarioError
from ..exploring import TASK_STRATEGY, ExploreOptions
from ..sched.explore import Exploration, RunOptions, RunResult
from ..sched.integration import active_clock
from ..sched.session import ExplorationSession, checked_token, options_from
from ..sched.strategies import Strategy
from .awaits import AwaitPoints
from .loop import TaskControl, active_control, run_controlled, set_active
from .points import PrimitivePatches

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["explore", "install_task_interleaving", "replay"]

TASK_STREAM = "sched"  # the same recorded stream as threads: one token format
AIO_PATCHES: ServiceKey[bool] = ServiceKey("aio.patches")
AIO_THREADS: ServiceKey[bool] = ServiceKey("aio.threads")

NEEDS_LOOP = (
    "task_interleaving: the test body did not run on faultline's event loop, so no task order "
    "was explored. The scenario is for async def tests (threads: use thread_preemption). Under "
    "pytest-asyncio, let faultline provide the loop (pytest-asyncio "
    ">= 1.4: faultline answers its pytest_asyncio_loop_factories hook for tests marked "
    "task_interleaving; do not select another factory with mark.asyncio(loop_factories=...)), "
    "or drop the asyncio mark and let faultline run the async def test itself"
)


class _AsyncSession(ExplorationSession):
    """An exploration of asyncio task schedules."""

    seed_source = "aio-run"

    def __init__(
        self,
        faultline: FaultContext,
        fn: Callable[[], object],
        options: ExploreOptions,
        token: str | None,
    ) -> None:
        super().__init__(faultline, fn, options, token)
        self.clock = active_clock(faultline)
        # Whether the body starts threads: then every run runs the loop as a managed thread of
        # the thread scheduler (aio/threads.py), found out by the first run that does.
        self.with_threads = False

    def execute(self, decider: Decider, strategy: Strategy) -> RunResult:
        control = TaskControl(
            strategy,
            decider.stream(TASK_STREAM, recorded=True),
            stall_timeout=float(self.options.stall_timeout),
            max_steps=self.options.max_steps,
            clock=self.clock,
        )
        if self.with_threads:
            from .threads import run_mixed

            return run_mixed(
                lambda: run_body(self.fn, control), control, decider, strategy, self._run_options()
            )
        import random

        from ..decider import derive_seed

        strategy.begin(random.Random(derive_seed(decider.seed, "sched.strategy")))
        failure = run_body(self.fn, control)
        if not control.threads_seen:
            strategy.end(control.decisions)
        return RunResult(decider, control, failure)

    def run(self, decider: Decider, strategy: Strategy) -> RunResult:
        result = super().run(decider, strategy)
        if not self.with_threads and getattr(result.sched, "threads_seen", False):
            # Its threads ran free: made again with them under the scheduler (the choices before
            # the first thread are the same either way), as is every later run.
            self.with_threads = True
            fresh = Decider(decider.seed, test=decider.test, token=decider.token_in)
            result = super().run(fresh, strategy)
        log: Any = result.sched
        for why in getattr(log, "control", log).uncontrolled:
            if why not in self.exploration.uncontrolled:
                self.exploration.uncontrolled.append(why)
                self.faultline.record(EventKind.SCHEDULE, "uncontrolled", why)
        return result

    def _run_options(self) -> RunOptions:
        from ..sched.api import _namespaces, _own_namespace

        options = self.options
        return RunOptions(
            namespaces=_namespaces(list(options.rebind), [_own_namespace(self.fn)]),
            stall_timeout=float(options.stall_timeout),
            max_steps=options.max_steps,
            clock=self.clock,
        )


def run_body(call: Callable[[], object], control: TaskControl) -> BaseException | None:
    """One run of an async body: ``call()`` returns a coroutine (run on a fresh controlled
    loop), or runs it itself on a loop it owns (pytest-asyncio's runner), which must then be a
    :class:`ControlledLoop`."""
    if active_control() is not None:
        raise FaultlineError(
            "faultline.explore() was called inside an explored asyncio run; explore one "
            "function at a time (call it from the test body, not from code it runs)"
        )
    failure: BaseException | None = None
    previous = set_active(control)
    try:
        try:
            result = call()
        except BaseException as exc:
            result, failure = None, exc
    finally:
        set_active(previous)
    if asyncio.iscoroutine(result):
        coro = result
        return run_controlled(lambda: coro, control)
    if control.loop is None:
        raise FaultlineError(NEEDS_LOOP)
    if failure is not None and not isinstance(failure, DeadlockError) and control.threads:
        control.failure_thread = control.threads[0]
    _unwind_on(control)
    if control.sched is not None:
        from .threads import shutdown_run_executors

        shutdown_run_executors(control)  # the loop outlives the run; its workers must not
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    return failure


def _unwind_on(control: TaskControl) -> None:
    """Cancel the tasks a run left on a loop that outlives it (pytest-asyncio's)."""
    loop = control.loop
    if loop is None or loop.is_closed() or loop.is_running():
        return
    pending = [lane.task for lane in control.lanes() if lane.task is not None]
    pending = [t for t in pending if not t.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    control.cleaning = True
    previous = set_active(control)
    try:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        set_active(previous)


def _watch_threads(fl: FaultContext) -> bool:
    from .threads import watch_thread_starts

    fl.undo.push(watch_thread_starts(), "restore Thread.start after task_interleaving")
    return True


def _prepare(faultline: FaultContext, options: ExploreOptions) -> None:
    def setup(fl: FaultContext) -> bool:
        patches = PrimitivePatches()
        patches.install()
        fl.undo.push(patches.uninstall, "restore asyncio primitives after task_interleaving")
        return True

    faultline.service(AIO_PATCHES, setup)
    faultline.service(AIO_THREADS, _watch_threads)
    if options.preempt == "awaits":
        points = AwaitPoints([importlib.import_module(m) for m in options.modules])
        points.install()
        faultline.undo.push(points.uninstall, "restore coroutine code after preempt='awaits'")


def explore(
    faultline: FaultContext,
    fn: Callable[[], object],
    *,
    options: ExploreOptions | None = None,
    token: str | None = None,
    raises: bool = True,
    shrink_failures: bool | None = None,
    **given: Any,
) -> Exploration:
    """Run the coroutine function ``fn`` under up to ``runs`` task schedules on a controlled
    loop (virtual time); stop at the first failure, shrink it, check its token replays it and
    raise it with the report attached (or return it with ``raises=False``)."""
    __tracebackhide__ = True
    given.pop("namespaces", None)  # thread-only: asyncio primitives are patched on their class
    if options is None and given.get("strategy") is None:
        given["strategy"] = TASK_STRATEGY
    options = options_from(faultline, options, {**given, "shrink_failures": shrink_failures})
    if options.preempt in ("lines", "bytecode"):
        raise FaultlineError(
            f"explore(): preempt={options.preempt!r} is for thread schedules; for a coroutine "
            f"function use preempt='awaits' (a scheduling point at every await of modules=[...])"
        )
    _prepare(faultline, options)
    return _AsyncSession(faultline, fn, options, token).explore(raises=raises)


def replay(
    faultline: FaultContext, fn: Callable[[], object], token: str, **options: Any
) -> Exploration:
    """Run the coroutine function ``fn`` once under the task schedule recorded in ``token``."""
    __tracebackhide__ = True
    return explore(faultline, fn, token=checked_token(token), **options)


def install_task_interleaving(faultline: FaultContext, options: ExploreOptions) -> None:
    """The ``task_interleaving`` scenario: run the async test body under many task orders."""
    options.check(where="faultline scenario 'task_interleaving'", error=ScenarioError)
    if options.preempt in ("lines", "bytecode"):
        raise ScenarioError(
            f"faultline scenario 'task_interleaving': preempt={options.preempt!r} is for "
            f"threads; use preempt='awaits' with modules=[...] (or 'sync', the default)"
        )

    def wrapper(call: Callable[[], object]) -> object:
        __tracebackhide__ = True
        return explore(faultline, call, options=options)

    faultline.wrap_body(wrapper)
