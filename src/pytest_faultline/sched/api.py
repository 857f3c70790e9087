"""``faultline.explore``, ``faultline.replay`` and the ``thread_preemption`` scenario.

An exploration is three steps: :func:`search` runs schedules until one fails, :func:`settle`
shrinks that failure and checks that its token replays it, :func:`conclude` reports it. Every
step reads one :class:`~pytest_faultline.exploring.ExploreOptions`.
"""

from __future__ import annotations

import importlib
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind, ServiceKey
from ..decider import Choice, Decider, ReplayToken, derive_seed
from ..errors import FaultlineError, FaultlineWarning, ScenarioError
from ..exploring import PREEMPT_MODES, ExploreOptions
from . import runtime
from .explore import (
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
from .strategies import Strategy, TokenReplay, make_strategy, preemptions

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["explore", "install_thread_preemption", "replay"]

SCHED_SETUP: ServiceKey[bool] = ServiceKey("sched")
OPTIONS_STREAM = "sched.options"


def _crc(text: str) -> int:
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def options_fingerprint(options: ExploreOptions) -> list[Choice]:
    """What a schedule depends on, recorded in its token: the preemption mode and the modules
    whose lines are scheduling points (a replay must use the same), and the strategy that found
    it (for the report; a replay follows the recorded choices whatever strategy it is given)."""
    modules = ",".join(sorted(options.modules)) if options.preempt != "sync" else ""
    return [_crc(options.preempt), _crc(modules), _crc(options.strategy)]


def _describe_fingerprint(values: list[Choice]) -> str:
    preempt = next((m for m in PREEMPT_MODES if _crc(m) == values[0]), "another mode")
    text = f"preempt={preempt!r}"
    if len(values) > 1 and values[1] != _crc(""):
        text += ", other modules" if preempt != "sync" else ""
    return text


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
    if shrink_failures is not None:  # the name before ExploreOptions
        given["shrink"] = shrink_failures
    if options is None:
        options = ExploreOptions.build(**given)
    elif given:
        raise FaultlineError(
            f"explore(): give the options either as options=ExploreOptions(...) or as keywords, "
            f"not both (got options= and {', '.join(sorted(given))})"
        )
    else:
        options.check(where="explore()")
    options = options.resolved(faultline.settings)
    session = _Session(faultline, fn, options, token, namespaces)
    failing = session.search()
    if failing is None:
        return session.exploration
    best = session.settle(failing)
    return session.conclude(best, raises=raises)


@dataclass
class _Session:
    """One exploration of ``fn``: its options, the runs it made, and what it found."""

    faultline: FaultContext
    fn: Callable[[], object]
    options: ExploreOptions
    token: str | None
    namespaces: list[dict[str, Any] | None] | None

    def __post_init__(self) -> None:
        faultline, options = self.faultline, self.options
        _prepare(faultline)
        clock = active_clock(faultline)
        if clock is not None:
            faultline.service(SCHED_CLOCK, lambda fl: clock.add_listener(_follow_clock) or True)
        files = module_files(list(options.modules)) if options.preempt != "sync" else frozenset()
        self.run_options = RunOptions(
            line_files=files,
            preempt=options.preempt,
            modules=options.modules,
            namespaces=_namespaces(
                [*options.modules, *options.rebind],
                [*(self.namespaces or []), _own_namespace(self.fn)],
            ),
            stall_timeout=float(options.stall_timeout),
            max_steps=options.max_steps,
            clock=clock,
        )
        self.fingerprint = options_fingerprint(options)
        self.original = faultline.decider
        self.replaying: ReplayToken | None = (
            ReplayToken.decode(self.token) if self.token is not None else self.original.token_in
        )
        # A token given here or on the command line replays only; one from the cache replays
        # first and the search goes on if it passes.
        self.explicit = self.token is not None or (
            self.replaying is not None and self.replaying == faultline.settings.replay
        )
        self.exploration = Exploration(strategy=options.strategy, preempt=options.preempt)
        self.started = _raw.monotonic()
        budget = options.budget
        self.deadline = None if budget is None else self.started + float(budget)

    def run(self, decider: Decider, strategy: Strategy) -> RunResult:
        recorded = decider.stream(OPTIONS_STREAM, recorded=True).record(self.fingerprint)
        if recorded is not None and recorded[:2] != self.fingerprint[:2]:
            decider.note_divergence(
                f"the token was recorded with other scheduling options "
                f"({_describe_fingerprint(recorded)}) than this replay "
                f"({_describe_fingerprint(self.fingerprint)}); replay with the options the "
                f"failure report prints"
            )
        with self.faultline.use_decider(decider):  # faults inside fn draw from the run's decider
            result = run_once(self.fn, decider, strategy, self.run_options)
        if decider.token_in is not None:
            for source, left in decider.unused_choices().items():
                decider.note_divergence(
                    f"the run ended with {left} recorded choice(s) of stream {source!r} unused: "
                    f"the code took another path than when the token was recorded"
                )
        self.exploration.steps = list(result.sched.trace)
        return result

    def search(self) -> RunResult | None:
        """Run schedules until one fails; None (and a recorded summary) if none did."""
        exploration, options, original = self.exploration, self.options, self.original
        if self.replaying is not None:
            replaying = self.replaying
            result = self.run(
                Decider(replaying.seed, test=original.test, token=replaying), TokenReplay()
            )
            exploration.schedules += 1
            exploration.decisions += len(result.decisions)
            original.divergences.extend(result.decider.divergences)
            exploration.notes.extend(f"replay diverged: {d}" for d in result.decider.divergences)
            if result.failure is not None:
                exploration.replayed = "token" if self.explicit else "cache"
                return self._found(result)
            source = "given" if self.explicit else "cached"
            if result.decider.divergences and self.explicit:
                # A replay that did not follow its token proves nothing: never a silent pass.
                raise FaultlineError(
                    f"the replayed schedule passed, but it is not the recorded one: "
                    f"{result.decider.divergences[0]}"
                )
            self.faultline.record(
                EventKind.SCHEDULE,
                "replay",
                f"the {source} token's schedule passed"
                + ("" if self.explicit else "; searching on"),
            )
        if not self.explicit:
            strategy = make_strategy(
                options.strategy, depth=options.depth, max_preemptions=options.max_preemptions
            )
            for i in range(options.run_count):
                if self.deadline is not None and i > 0 and _raw.monotonic() > self.deadline:
                    exploration.notes.append(f"stopped by the {options.budget:g} s budget")
                    break
                seed = derive_seed(original.seed, "sched-run", str(i))
                result = self.run(Decider(seed, test=original.test), strategy)
                exploration.schedules += 1
                exploration.decisions += len(result.decisions)
                if result.failure is not None:
                    return self._found(result)
                if strategy.exhausted or not result.decisions:
                    # No choice point at all: every schedule of this body is this one.
                    exploration.exhausted = True
                    break
        exploration.elapsed = _raw.monotonic() - self.started
        if (
            not self.explicit
            and options.strategy == "dfs"
            and options.max_preemptions is None
            and not exploration.exhausted
        ):
            text = (
                f"dfs without max_preemptions covered {exploration.schedules} schedules and did "
                f"not finish: the unbounded space is too large, so this is no proof; give "
                f"max_preemptions=2 (every schedule with at most 2 preemptions, usually "
                f"exhaustible) or more runs"
            )
            exploration.notes.append(text)
            warnings.warn(FaultlineWarning(text), stacklevel=4)
        self.faultline.record(EventKind.SCHEDULE, "explore", exploration.summary())
        return None

    def _found(self, failing: RunResult) -> RunResult:
        self.exploration.found_after = _raw.monotonic() - self.started
        self.exploration.found_preemptions = preemptions(failing.decisions)
        return failing

    def settle(self, failing: RunResult) -> RunResult:
        """Shrink ``failing`` to fewer preemptions and check that its token replays it."""
        exploration, options = self.exploration, self.options
        if failing.sched.stalled:
            return failing  # a stalled run is not replayed: it would stall again
        best = failing
        if options.shrink and preemptions(failing.decisions) > 0 and self.replaying is None:
            best, exploration.shrink_runs = shrink(
                self.fn,
                failing,
                self.run_options,
                max_runs=SHRINK_RUNS,
                deadline=self.deadline,
                run=self.run,
            )
        why = verify(self.fn, best, self.run_options, run=self.run)
        if (
            why is not None
            and best is not failing
            and verify(self.fn, failing, self.run_options, run=self.run) is None
        ):
            best, why = failing, None
        if why is not None:
            exploration.reproducible = False
            exploration.notes.append(why)
        return best

    def conclude(self, best: RunResult, *, raises: bool) -> Exploration:
        """Record and report the failure of ``best``; raise it unless ``raises=False``."""
        exploration, faultline = self.exploration, self.faultline
        exploration.failure = best.failure
        exploration.steps = list(best.sched.trace)
        exploration.preemptions = preemptions(best.decisions)
        exploration.elapsed = _raw.monotonic() - self.started
        if exploration.reproducible:
            faultline.adopt_decider(best.decider)  # the report and token cache show this run
            exploration.token = best.token
            exploration.seed = best.decider.seed
        exploration.report = describe_failure(
            exploration,
            best,
            nodeid=faultline.nodeid,
            strategy_text=self.options.describe(),
            replay_options=self.options.replay_arguments(),
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


def install_thread_preemption(faultline: FaultContext, options: ExploreOptions) -> None:
    """The ``thread_preemption`` scenario: run the test body under many schedules."""
    options.check(where="faultline scenario 'thread_preemption'", error=ScenarioError)
    namespace = test_namespace(faultline)

    def wrapper(call: Callable[[], object]) -> object:
        __tracebackhide__ = True
        return explore(faultline, call, options=options, namespaces=[namespace])

    faultline.wrap_body(wrapper)
