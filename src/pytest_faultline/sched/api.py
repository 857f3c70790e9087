"""``faultline.explore``, ``faultline.replay`` and the ``thread_preemption`` scenario.

An exploration is three steps: :func:`search` runs schedules until one fails, :func:`settle`
shrinks that failure and checks that its token replays it, :func:`conclude` reports it. Every
step reads one :class:`~pytest_faultline.exploring.ExploreOptions`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._context import ServiceKey
from ..decider import Decider
from ..errors import FaultlineError, ScenarioError
from ..exploring import ExploreOptions
from . import runtime
from .explore import (
    Exploration,
    RunOptions,
    RunResult,
    preempt_handler,
    run_once,
    test_namespace,
)
from .integration import active_clock
from .lines import make_hook, module_files
from .session import ExplorationSession, checked_token, options_from
from .strategies import Strategy

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["explore", "install_thread_preemption", "replay"]

SCHED_SETUP: ServiceKey[bool] = ServiceKey("sched")
SCHED_CLOCK: ServiceKey[bool] = ServiceKey("sched.clock")


def _namespaces(
    modules: list[str] | None, extra: list[dict[str, Any] | None]
) -> tuple[dict[str, Any], ...]:
    spaces = [vars(importlib.import_module(m)) for m in modules or ()]
    spaces += [ns for ns in extra if ns is not None]
    unique: dict[int, dict[str, Any]] = {id(ns): ns for ns in spaces}
    return tuple(unique.values())


def _own_namespace(fn: Callable[[], object]) -> dict[str, Any] | None:
    namespace = getattr(fn, "__globals__", None)
    if not isinstance(namespace, dict) or str(namespace.get("__name__", "")).startswith(
        "pytest_faultline"
    ):
        return None
    return namespace


def _prepare(faultline: FaultContext) -> None:
    def setup(fl: FaultContext) -> bool:
        fl.add_handler("preempt", preempt_handler)
        return True

    faultline.service(SCHED_SETUP, setup)


def _follow_clock(clock: Any) -> None:
    sched = runtime.active()
    if sched is not None and sched.clock is clock:
        sched.sync_clock()


def explore(
    faultline: FaultContext,
    fn: Callable[[], object],
    *,
    options: ExploreOptions | None = None,
    token: str | None = None,
    raises: bool = True,
    namespaces: list[dict[str, Any] | None] | None = None,
    shrink_failures: bool | None = None,
    **given: Any,
) -> Exploration:
    """Run ``fn`` under up to ``runs`` thread schedules chosen by ``strategy``; stop at the first
    failure, shrink it, check that its token replays it, and raise it with the report attached
    (or return it in the :class:`Exploration` with ``raises=False``). State that must be fresh
    for each schedule has to be created inside ``fn``. The options are those of
    :class:`~pytest_faultline.ExploreOptions`, given as keywords or as ``options=``."""
    __tracebackhide__ = True
    options = options_from(faultline, options, {**given, "shrink_failures": shrink_failures})
    if options.preempt == "awaits":
        raise FaultlineError(
            "explore(): preempt='awaits' makes every await a scheduling point, for asyncio task "
            "schedules: pass a coroutine function (async def) or use the 'task_interleaving' "
            "scenario; for threads use preempt='sync' or 'lines'"
        )
    session = _Session(faultline, fn, options, token, namespaces)
    try:
        return session.explore(raises=raises)
    finally:
        session.close()


class _Session(ExplorationSession):
    """An exploration of thread schedules."""

    def __init__(
        self,
        faultline: FaultContext,
        fn: Callable[[], object],
        options: ExploreOptions,
        token: str | None,
        namespaces: list[dict[str, Any] | None] | None,
    ) -> None:
        super().__init__(faultline, fn, options, token)
        _prepare(faultline)
        clock = active_clock(faultline)
        if clock is not None:
            faultline.service(SCHED_CLOCK, lambda fl: clock.add_listener(_follow_clock) or True)
        files = module_files(list(options.modules)) if options.preempt != "sync" else frozenset()
        self.run_options = RunOptions(
            namespaces=_namespaces(
                [*options.modules, *options.rebind],
                [*(namespaces or []), _own_namespace(fn)],
            ),
            stall_timeout=float(options.stall_timeout),
            max_steps=options.max_steps,
            clock=clock,
            hook=make_hook(options.preempt, options.modules, files),
        )

    def close(self) -> None:
        """The end of the exploration: its lines/bytecode hook goes, and what it disabled."""
        hook = self.run_options.hook
        if hook is not None:
            hook.uninstall()

    def execute(self, decider: Decider, strategy: Strategy) -> RunResult:
        return run_once(self.fn, decider, strategy, self.run_options)


def replay(
    faultline: FaultContext, fn: Callable[[], object], token: str, **options: Any
) -> Exploration:
    """Run ``fn`` once under the schedule recorded in ``token`` (from a failure report)."""
    __tracebackhide__ = True
    return explore(faultline, fn, token=checked_token(token), **options)


def install_thread_preemption(faultline: FaultContext, options: ExploreOptions) -> None:
    """The ``thread_preemption`` scenario: run the test body under many schedules."""
    options.check(where="faultline scenario 'thread_preemption'", error=ScenarioError)
    namespace = test_namespace(faultline)

    def wrapper(call: Callable[[], object]) -> object:
        __tracebackhide__ = True
        return explore(faultline, call, options=options, namespaces=[namespace])

    faultline.wrap_body(wrapper)
