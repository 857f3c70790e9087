"""``faultline.explore``, ``faultline.replay`` and the ``thread_preemption`` scenario."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind, ServiceKey
from ..decider import Decider, ReplayToken, derive_seed
from ..errors import FaultlineError, ScenarioError
from . import runtime
from .explore import (
    DEFAULT_MAX_STEPS,
    DEFAULT_RUNS,
    DEFAULT_STALL_S,
    SHRINK_RUNS,
    Exploration,
    RunOptions,
    RunResult,
    attach,
    describe_failure,
    preempt_handler,
    run_once,
    shrink,
    test_namespace,
    verify,
)
from .integration import active_clock
from .lines import module_files
from .patches import restore_originals
from .strategies import STRATEGIES, Strategy, TokenReplay, make_strategy, preemptions

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["explore", "install_thread_preemption", "replay"]

PREEMPT_MODES = ("sync", "lines")
SCHED_SETUP: ServiceKey[bool] = ServiceKey("sched")
SCHED_CLOCK: ServiceKey[bool] = ServiceKey("sched.clock")


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_options(
    *,
    runs: object,
    strategy: object,
    depth: object,
    max_preemptions: object,
    preempt: object,
    modules: object,
    error: type[FaultlineError] = FaultlineError,
    where: str = "explore()",
) -> frozenset[str]:
    """Validate the scheduler's options; return the source files of ``modules`` for lines mode."""
    if runs is not None and not _whole(runs, 1):
        raise error(f"{where}: runs must be a whole number >= 1, got {runs!r}")
    if strategy not in STRATEGIES:
        raise error(
            f"{where}: unknown strategy {strategy!r}; use one of "
            f"{', '.join(map(repr, STRATEGIES))} "
            f"(replay a token with faultline.replay(fn, token) or --faultline-replay)"
        )
    if not _whole(depth, 1):
        raise error(f"{where}: depth must be a whole number >= 1 (pct's bug depth), got {depth!r}")
    if max_preemptions is not None and not _whole(max_preemptions, 0):
        raise error(
            f"{where}: max_preemptions must be a whole number >= 0 or None, got {max_preemptions!r}"
        )
    if preempt not in PREEMPT_MODES:
        raise error(
            f"{where}: preempt must be 'sync' (switch at synchronisation operations) or 'lines' "
            f"(also at every line of modules=[...]), got {preempt!r}"
        )
    if modules is not None and (
        not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) for m in modules)
    ):
        raise error(
            f"{where}: modules must be a list of module names like ['pkg.mod'], got {modules!r}"
        )
    if preempt == "lines" and not modules:
        raise error(
            f"{where}: preempt='lines' needs modules=['pkg.mod', ...]: the modules whose every "
            f"line becomes a scheduling point (tracing every module would be far too slow)"
        )
    for name in modules or ():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise error(
                f"{where}: cannot import module {name!r} named in modules=: {exc}"
            ) from None
    return module_files(list(modules or [])) if preempt == "lines" else frozenset()


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
        fl.undo.push(restore_originals, "restore threading/time/queue after the scheduler")
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
    runs: int | None = None,
    strategy: str = "pct",
    depth: int = 3,
    max_preemptions: int | None = None,
    preempt: str = "sync",
    modules: list[str] | None = None,
    budget: float | None = None,
    stall_timeout: float = DEFAULT_STALL_S,
    max_steps: int = DEFAULT_MAX_STEPS,
    shrink_failures: bool = True,
    token: str | None = None,
    raises: bool = True,
    namespaces: list[dict[str, Any] | None] | None = None,
) -> Exploration:
    """Run ``fn`` under up to ``runs`` thread schedules chosen by ``strategy``; stop at the first
    failure, shrink it, check that its token replays it, and raise it with the report attached
    (or return it in the :class:`Exploration` with ``raises=False``). State that must be fresh
    for each schedule has to be created inside ``fn``."""
    __tracebackhide__ = True
    files = check_options(
        runs=runs,
        strategy=strategy,
        depth=depth,
        max_preemptions=max_preemptions,
        preempt=preempt,
        modules=modules,
    )
    if not isinstance(stall_timeout, (int, float)) or stall_timeout <= 0:
        raise FaultlineError(f"explore(): stall_timeout must be seconds > 0, got {stall_timeout!r}")
    if budget is None:
        budget = faultline.settings.budget
    if runs is None:
        runs = faultline.settings.param_runs or DEFAULT_RUNS
    _prepare(faultline)
    clock = active_clock(faultline)
    if clock is not None:
        faultline.service(SCHED_CLOCK, lambda fl: clock.add_listener(_follow_clock) or True)
    options = RunOptions(
        line_files=files,
        namespaces=_namespaces(modules, [*(namespaces or []), _own_namespace(fn)]),
        stall_timeout=float(stall_timeout),
        max_steps=max_steps,
        clock=clock,
    )
    text = f"{strategy}" + (f", depth {depth}" if strategy == "pct" else "")
    text = f"of up to {runs}, {text}"
    if strategy == "dfs":
        text += f", max_preemptions {max_preemptions}"
    text += f", preempt={preempt}"
    original = faultline.decider
    replaying: ReplayToken | None = (
        ReplayToken.decode(token) if token is not None else original.token_in
    )
    settings_replay = faultline.settings.replay
    explicit = token is not None or (replaying is not None and replaying == settings_replay)
    exploration = Exploration(strategy=strategy)
    started = _raw.monotonic()
    deadline = None if budget is None else started + float(budget)

    def run(decider: Decider, strat: Strategy) -> RunResult:
        with faultline.use_decider(decider):  # faults inside fn draw from the run's decider
            result = run_once(fn, decider, strat, options)
        exploration.steps = list(result.sched.trace)
        return result

    failing: RunResult | None = None
    if replaying is not None:
        result = run(Decider(replaying.seed, test=original.test, token=replaying), TokenReplay())
        exploration.schedules += 1
        exploration.decisions += len(result.decisions)
        original.divergences.extend(result.decider.divergences)
        if result.failure is not None:
            failing = result
            exploration.replayed = True
    if failing is None and not explicit:
        search = make_strategy(strategy, depth=depth, max_preemptions=max_preemptions)
        for i in range(runs):
            if deadline is not None and i > 0 and _raw.monotonic() > deadline:
                exploration.notes.append(f"stopped by the {budget:g} s budget")
                break
            seed = derive_seed(original.seed, "sched-run", str(i))
            result = run(Decider(seed, test=original.test), search)
            exploration.schedules += 1
            exploration.decisions += len(result.decisions)
            if result.failure is not None:
                failing = result
                break
            if search.exhausted or not result.decisions:
                # No choice point at all: every schedule of this body is this one.
                exploration.exhausted = True
                break
    if failing is None:
        exploration.elapsed = _raw.monotonic() - started
        faultline.record(EventKind.SCHEDULE, "explore", exploration.summary())
        return exploration
    best = failing
    exploration.found_after = _raw.monotonic() - started
    exploration.found_preemptions = preemptions(failing.decisions)
    if not failing.sched.stalled:
        if shrink_failures and preemptions(failing.decisions) > 0 and replaying is None:
            best, exploration.shrink_runs = shrink(
                fn,
                failing,
                options,
                max_runs=SHRINK_RUNS,
                deadline=deadline,
                run=run,
            )
        why = verify(fn, best, options, run=run)
        if (
            why is not None
            and best is not failing
            and verify(fn, failing, options, run=run) is None
        ):
            best, why = failing, None
        if why is not None:
            exploration.reproducible = False
            exploration.notes.append(why)
    exploration.failure = best.failure
    exploration.steps = list(best.sched.trace)
    exploration.preemptions = preemptions(best.decisions)
    exploration.elapsed = _raw.monotonic() - started
    if exploration.reproducible:
        faultline.adopt_decider(best.decider)  # the report and token cache show this run
        exploration.token = best.token
        exploration.seed = best.decider.seed
    exploration.report = describe_failure(
        exploration,
        best,
        nodeid=faultline.nodeid,
        strategy_text=text,
        replay_options=f", preempt={preempt!r}, modules={modules!r}" if preempt != "sync" else "",
    )
    faultline.record(EventKind.INTERLEAVING, "explore", exploration.summary())
    assert best.failure is not None
    attach(best.failure, exploration.report)
    best.failure.faultline_exploration = exploration  # type: ignore[attr-defined]
    if raises:
        raise best.failure
    return exploration


def replay(
    faultline: FaultContext, fn: Callable[[], object], token: str, **options: Any
) -> Exploration:
    """Run ``fn`` once under the schedule recorded in ``token`` (from a failure report)."""
    __tracebackhide__ = True
    if not isinstance(token, str):
        raise FaultlineError(
            f"replay() needs the token string from a failure report, got {token!r}"
        )
    ReplayToken.decode(token)  # a bad token is reported before anything runs
    return explore(faultline, fn, token=token, **options)


def install_thread_preemption(
    faultline: FaultContext,
    runs: int,
    strategy: str,
    depth: int,
    max_preemptions: int | None,
    preempt: str,
    modules: list[str] | None,
) -> None:
    """The ``thread_preemption`` scenario: run the test body under many schedules."""
    check_options(
        runs=runs,
        strategy=strategy,
        depth=depth,
        max_preemptions=max_preemptions,
        preempt=preempt,
        modules=modules,
        error=ScenarioError,
        where="faultline scenario 'thread_preemption'",
    )
    namespace = test_namespace(faultline)

    def wrapper(call: Callable[[], object]) -> object:
        __tracebackhide__ = True
        return explore(
            faultline,
            call,
            runs=runs,
            strategy=strategy,
            depth=depth,
            max_preemptions=max_preemptions,
            preempt=preempt,
            modules=modules,
            namespaces=[namespace],
        )

    faultline.wrap_body(wrapper)
