"""One exploration as search / settle / conclude, for any scheduler.

The thread scheduler (:mod:`.api`) and the controlled asyncio loop (``pytest_faultline.aio``)
differ only in how one run is made: :meth:`ExplorationSession.execute` runs ``fn`` once under a
decider and a strategy. Everything else (replaying a token first, the budget, shrinking,
verifying the token, the report, adopting the failing run's decider) is this one class.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind
from ..decider import Choice, Decider, ReplayToken, derive_seed
from ..errors import FaultlineError, FaultlineWarning
from ..exploring import PREEMPT_MODES, ExploreOptions
from .explore import (
    SHRINK_RUNS,
    Exploration,
    RunResult,
    attach,
    describe_failure,
    shrink,
    verify,
)
from .strategies import Strategy, TokenReplay, make_strategy, preemptions

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["ExplorationSession", "checked_token", "options_fingerprint", "options_from"]

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
    if not values:
        return "no scheduling options"
    preempt = next((m for m in PREEMPT_MODES if _crc(m) == values[0]), "another mode")
    text = f"preempt={preempt!r}"
    if len(values) > 1 and values[1] != _crc(""):
        text += ", other modules" if preempt != "sync" else ""
    return text


def checked_token(token: object) -> str:
    """The token given to ``replay()``, checked before anything runs."""
    if not isinstance(token, str):
        raise FaultlineError(
            f"replay() needs the token string from a failure report, got {token!r}"
        )
    ReplayToken.decode(token)  # a bad token is reported before anything runs
    return token


def options_from(
    faultline: FaultContext,
    options: ExploreOptions | None,
    given: dict[str, Any],
    *,
    where: str = "explore()",
) -> ExploreOptions:
    """The options of an ``explore()`` call, given either as ``options=`` or as keywords,
    checked and completed from the session's settings."""
    if "shrink_failures" in given:  # the name before ExploreOptions
        value = given.pop("shrink_failures")
        if value is not None:
            given["shrink"] = value
    if options is None:
        options = ExploreOptions.build(where=where, **given)
    elif given:
        raise FaultlineError(
            f"{where}: give the options either as options=ExploreOptions(...) or as keywords, "
            f"not both (got options= and {', '.join(sorted(given))})"
        )
    else:
        options.check(where=where)
    return options.resolved(faultline.settings)


class ExplorationSession:
    """One exploration of ``fn``: its options, the runs it made, and what it found.

    Subclasses implement :meth:`execute` (one run of ``fn``); ``run_options`` is passed through
    to shrinking and verification unchanged.
    """

    seed_source = "sched-run"

    def __init__(
        self,
        faultline: FaultContext,
        fn: Callable[[], object],
        options: ExploreOptions,
        token: str | None,
    ) -> None:
        self.faultline = faultline
        self.fn = fn
        self.options = options
        self.token = token
        self.run_options: Any = None
        self.fingerprint = options_fingerprint(options)
        self.original = faultline.decider
        self.replaying: ReplayToken | None = (
            ReplayToken.decode(token) if token is not None else self.original.token_in
        )
        # A token given here or on the command line replays only; one from the cache replays
        # first and the search goes on if it passes.
        self.explicit = token is not None or (
            self.replaying is not None and self.replaying == faultline.settings.replay
        )
        self.exploration = Exploration(strategy=options.strategy, preempt=options.preempt)
        self.started = _raw.monotonic()
        budget = options.budget
        self.deadline = None if budget is None else self.started + float(budget)

    def execute(self, decider: Decider, strategy: Strategy) -> RunResult:
        """Run ``fn`` once, its choices drawn from ``decider`` and ``strategy``."""
        raise NotImplementedError

    def run(self, decider: Decider, strategy: Strategy) -> RunResult:
        recorded = decider.stream(OPTIONS_STREAM, recorded=True).record(self.fingerprint)
        # A token without a fingerprint (a test's own token, cached before any schedule ran)
        # has nothing to compare.
        if recorded and recorded[:2] != self.fingerprint[:2]:
            decider.note_divergence(
                f"the token was recorded with other scheduling options "
                f"({_describe_fingerprint(recorded)}) than this replay "
                f"({_describe_fingerprint(self.fingerprint)}); replay with the options the "
                f"failure report prints"
            )
        with self.faultline.use_decider(decider):  # faults inside fn draw from the run's decider
            result = self.execute(decider, strategy)
        if decider.token_in is not None:
            for source, left in decider.unused_choices().items():
                decider.note_divergence(
                    f"the run ended with {left} recorded choice(s) of stream {source!r} unused: "
                    f"the code took another path than when the token was recorded"
                )
        self.exploration.steps = list(result.sched.trace)
        return result

    def explore(self, *, raises: bool) -> Exploration:
        """search, then settle and conclude the failure if one was found."""
        __tracebackhide__ = True
        failing = self.search()
        if failing is None:
            return self.exploration
        return self.conclude(self.settle(failing), raises=raises)

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
                seed = derive_seed(original.seed, self.seed_source, str(i))
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
            warnings.warn(FaultlineWarning(text), stacklevel=5)
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
