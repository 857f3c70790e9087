"""Running a function under many schedules: the search, shrinking, verification and report."""

from __future__ import annotations

import dis
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _points, _raw
from .._sites import relative
from ..decider import Decider, derive_seed
from ..errors import DeadlockError, FaultlineError
from ..exploring import DEFAULT_MAX_STEPS, DEFAULT_STALL_S
from . import runtime
from .integration import install_park_hook
from .patches import PatchSet
from .runtime import DONE, OUTSIDE, Decision, Scheduler, Step, ThreadRecord
from .strategies import DepthFirst, PrefixReplay, Strategy, TokenReplay, preemptions

if TYPE_CHECKING:
    from typing import Protocol

    from .._context import FaultContext
    from ..actions import Hit

    # Protocols for the type checker only (building one costs ~0.2 ms at import).

    class Lane(Protocol):
        """A thread or an asyncio task as the reports show it."""

        @property
        def title(self) -> str: ...

    class RunLog(Protocol):
        """What a run leaves for shrinking and reports, whether it scheduled threads
        (:class:`~.runtime.Scheduler`) or asyncio tasks (``aio``'s controlled loop)."""

        @property
        def decisions(self) -> list[Decision]: ...
        @property
        def trace(self) -> Sequence[Step]: ...
        @property
        def steps(self) -> int: ...
        @property
        def stalled(self) -> bool: ...
        @property
        def threads(self) -> Sequence[Lane]: ...
        @property
        def failure_thread(self) -> Lane | None: ...
        @property
        def preempted_at(self) -> set[int]: ...


__all__ = ["Exploration", "RunOptions", "run_once"]

SCHED_STREAM = "sched"
# What "explored all schedules" covers, by preempt mode.
GRANULARITY = {
    "sync": "exhaustive at sync granularity (switches only at synchronisation operations)",
    "lines": "exhaustive at line granularity (no switch inside a line)",
    "bytecode": "exhaustive at bytecode granularity in the named modules",
    "awaits": "exhaustive at task granularity (switches only at awaits and asyncio primitives)",
}
SHRINK_RUNS = 60
SUPERVISE_POLL_S = 0.02
UNWIND_BOUND_S = 2.0


# RunOptions, RunResult and Exploration are plain classes, not dataclasses: this module is
# imported by the first exploration of a process, and each dataclass costs about a millisecond
# to build (the cold start to the first failing schedule is measured in milliseconds).


class RunOptions:
    """How each run is driven (validated by ``explore``)."""

    __slots__ = ("clock", "hook", "max_steps", "namespaces", "stall_timeout")

    def __init__(
        self,
        *,
        namespaces: tuple[dict[str, Any], ...] = (),
        stall_timeout: float = DEFAULT_STALL_S,
        max_steps: int = DEFAULT_MAX_STEPS,
        clock: Any = None,
        hook: Any = None,
    ) -> None:
        self.namespaces = namespaces
        self.stall_timeout = stall_timeout
        self.max_steps = max_steps
        self.clock = clock  # the test's running clock, if any
        # The lines/bytecode hook of the exploration (None: no line or bytecode points), made
        # and removed by it; its first run installs it (installing sys.monitoring events for
        # each run made every run re-instrument the code it passed).
        self.hook = hook


class RunResult:
    """One run: its failure (if any), its decisions and the scheduler (for the report)."""

    __slots__ = ("decider", "failure", "sched")

    def __init__(self, decider: Decider, sched: RunLog, failure: BaseException | None) -> None:
        self.decider = decider
        self.sched = sched
        self.failure = failure

    @property
    def decisions(self) -> list[Decision]:
        return self.sched.decisions

    @property
    def choices(self) -> list[int]:
        return [d.k for d in self.sched.decisions]

    @property
    def token(self) -> str:
        return self.decider.token().encode()


class Exploration:
    """The outcome of ``faultline.explore``: how many schedules ran, whether the space was
    exhausted (``dfs``), and the failure with its replay token."""

    def __init__(
        self,
        strategy: str,
        preempt: str = "sync",
        schedules: int = 0,
        exhausted: bool = False,
        failure: BaseException | None = None,
        token: str | None = None,
        seed: int | None = None,
        preemptions: int | None = None,
        found_preemptions: int | None = None,
        shrink_runs: int = 0,
        reproducible: bool = True,
        replayed: str = "",
        decisions: int = 0,
        elapsed: float = 0.0,
        found_after: float | None = None,
        report: str = "",
        notes: list[str] | None = None,
        steps: list[Step] | None = None,
        uncontrolled: list[str] | None = None,
    ) -> None:
        self.strategy = strategy
        self.preempt = preempt  # the granularity an exhaustive search is exhaustive at
        self.schedules = schedules
        self.exhausted = exhausted
        self.failure = failure
        self.token = token
        self.seed = seed
        self.preemptions = preemptions
        self.found_preemptions = found_preemptions
        self.shrink_runs = shrink_runs
        self.reproducible = reproducible
        self.replayed = replayed  # "token" (given) or "cache" (a failing token from the cache)
        self.decisions = decisions
        self.elapsed = elapsed
        self.found_after = found_after  # seconds until the first failing schedule ended
        self.report = report
        self.notes: list[str] = [] if notes is None else notes
        self.steps: list[Step] = [] if steps is None else steps
        # what decided the runs besides the seed (an executor made before an asyncio run)
        self.uncontrolled: list[str] = [] if uncontrolled is None else uncontrolled

    def __repr__(self) -> str:
        return (
            f"Exploration(strategy={self.strategy!r}, preempt={self.preempt!r}, "
            f"schedules={self.schedules!r}, exhausted={self.exhausted!r}, "
            f"failure={self.failure!r}, token={self.token!r})"
        )

    @property
    def passed(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        if self.failure is not None:
            return (
                f"schedule {self.schedules} ({self.strategy}) failed: {type(self.failure).__name__}"
            )
        if self.exhausted:
            return (
                f"explored all {self.schedules} schedules ({self.strategy}): no failure, "
                f"{GRANULARITY[self.preempt]}"
            )
        return f"{self.schedules} schedules ({self.strategy}): no failure"

    __str__ = summary


def run_once(
    fn: Callable[[], object], decider: Decider, strategy: Strategy, options: RunOptions
) -> RunResult:
    """Run ``fn`` once under the scheduler with ``strategy``; never hangs, always unpatches."""
    if runtime.active() is not None:
        raise FaultlineError(
            "faultline.explore() was called inside an explored run; explore one function at a "
            "time (call it from the test body, not from code it runs)"
        )
    import random

    strategy.begin(random.Random(derive_seed(decider.seed, "sched.strategy")))
    sched = Scheduler(
        strategy,
        decider.stream(SCHED_STREAM, recorded=True),
        stall_timeout=options.stall_timeout,
        max_steps=options.max_steps,
    )
    sched.line_hook = options.hook
    if options.clock is not None:
        sched.use_clock(options.clock)
    body = threading.Thread(name="faultline-run", daemon=True)
    rec0 = sched.new_thread(body)

    body.run = lambda: sched.run_managed(rec0, fn)  # type: ignore[method-assign]
    patches = PatchSet(sched, list(options.namespaces))
    observer_installed = False
    previous: Any = None
    unpark: Callable[[], None] | None = None
    try:
        patches.install()
        unpark = install_park_hook(with_clock=options.clock is not None)
        previous = _points.set_observer(_observe_point)
        observer_installed = True
        runtime._ACTIVE[0] = sched
        sched.current = rec0
        _raw.thread_start(body)
        rec0.gate.release()
        _supervise(sched)
    finally:
        if not sched.aborted and not sched.all_done.is_set():  # interrupted (Ctrl-C): unwind
            sched.fail(FaultlineError("the run was interrupted"), None)
            sched.all_done.wait(UNWIND_BOUND_S)
        runtime._ACTIVE[0] = None
        if observer_installed:
            _points.set_observer(previous)
        if unpark is not None:
            unpark()
        patches.uninstall()
    for rec in sched.threads:
        if rec.thread is not None and rec.state == DONE and rec.thread.is_alive():
            _raw.thread_join(rec.thread, UNWIND_BOUND_S)
    strategy.end(sched.decisions)
    return RunResult(decider, sched, sched.failure)


def _supervise(sched: Scheduler) -> None:
    """Wait for the run to end; move a thread that sits in a call the scheduler cannot see
    outside (so the others run); stop the run if nothing progresses for the stall bound."""
    last = -1
    since = _raw.monotonic()
    seen: tuple[object, ...] = ()
    while not sched.all_done.wait(runtime.EVICT_AFTER_S):
        if sched.aborted:
            # Threads are unwinding; one in a real call (or stuck in C) may never come back.
            _wait_unwound(sched, None)
            return
        now = _raw.monotonic()
        if sched.progress != last:
            last, since, seen = sched.progress, now, ()
            continue
        holder = sched.current
        if holder is not None and holder.entered and holder.state == runtime.READY:
            where = _blocked_in(sched, holder)
            if where is not None:
                if seen == where[1:] and sched.evict(holder, where[0]):
                    last, since, seen = sched.progress, now, ()
                    continue
                seen = where[1:]
        if now - since > sched.stall_timeout:
            stuck = sched.current
            sched.stall()
            _wait_unwound(sched, stuck)
            return


def _blocked_in(sched: Scheduler, rec: ThreadRecord) -> tuple[str, object, int] | None:
    """(what, code, instruction) when ``rec``'s innermost user frame sits on a call (a C call
    that blocks, such as acquiring a lock created before the run), else None."""
    frame = sched.frames().get(rec.ident) if rec.ident is not None else None
    if frame is None:
        return None
    code, lasti = frame.f_code, frame.f_lasti
    if code.co_filename.startswith(runtime.PKG_PREFIX):
        return None  # the scheduler's own plumbing (a handoff under way)
    if lasti < 0 or lasti >= len(code.co_code):
        return None
    op = dis.opname[code.co_code[lasti]]
    if not (op.startswith("CALL") or op in ("BEFORE_WITH", "SETUP_WITH", "PRECALL")):
        return None
    from .report import describe_blocking

    return describe_blocking(frame), code, lasti


def _wait_unwound(sched: Scheduler, stuck: ThreadRecord | None) -> None:
    """Wait (bounded) for the managed threads to unwind, except those that may never come
    back: the stuck one and those in a real call."""
    end = _raw.monotonic() + UNWIND_BOUND_S
    while _raw.monotonic() < end and any(
        t.state not in (DONE, OUTSIDE) and t is not stuck for t in sched.threads
    ):
        _raw.sleep(0.002)


def _observe_point(name: str, context: dict[str, Any]) -> None:
    ctx = runtime.current()
    if ctx is not None:
        ctx[0].point(ctx[1], f"point {name}")


def preempt_handler(hit: Hit | None) -> None:
    """The ``Preempt`` action: switch to another thread now, when a run is active."""
    ctx = runtime.current()
    if ctx is not None:
        ctx[0].preempt(ctx[1])


# -- failure analysis ------------------------------------------------------------------------------


def same_failure(a: BaseException | None, b: BaseException | None) -> bool:
    return a is not None and b is not None and type(a) is type(b)


Runner = Callable[[Decider, Strategy], RunResult]


def shrink(
    fn: Callable[[], object],
    failing: RunResult,
    options: RunOptions,
    *,
    max_runs: int,
    deadline: float | None,
    run: Runner,
) -> tuple[RunResult, int]:
    """A schedule failing the same way with fewer preemptions, if one is found within
    ``max_runs`` runs: first a depth-first search bounded by 0, 1, ... preemptions (the fewest
    that fail, when the space is small), then removing the remaining preemptions one by one."""
    best = failing
    runs = 0

    def out_of_time() -> bool:
        return runs >= max_runs or (deadline is not None and _raw.monotonic() > deadline)

    seed, test = failing.decider.seed, failing.decider.test
    for bound in range(preemptions(failing.decisions)):
        search = DepthFirst(bound)
        per_bound = max(1, (max_runs - runs) // 2)
        for _ in range(per_bound):
            if out_of_time():
                break
            trial = run(Decider(seed, test=test), search)
            runs += 1
            if same_failure(trial.failure, failing.failure):
                best = trial
                break
            if search.exhausted:
                break
        if best is not failing or out_of_time():
            break
    improved = True
    while improved and not out_of_time():
        improved = False
        ks = best.choices
        for i, d in enumerate(best.decisions):
            if not d.preemptive:
                continue
            if out_of_time():
                break
            trial = run(Decider(seed, test=test), PrefixReplay([*ks[:i], 0, *ks[i + 1 :]]))
            runs += 1
            if same_failure(trial.failure, failing.failure) and preemptions(
                trial.decisions
            ) < preemptions(best.decisions):
                best = trial
                improved = True
                break
    return best, runs


def verify(
    fn: Callable[[], object], result: RunResult, options: RunOptions, *, run: Runner, times: int = 2
) -> str | None:
    """Replay ``result``'s token ``times``; None if each replay fails the same way, else why not."""
    token = result.decider.token()
    for attempt in range(1, times + 1):
        decider = Decider(token.seed, test=token.test, token=token)
        again = run(decider, TokenReplay())
        if decider.divergences:
            return f"replay {attempt} diverged: {decider.divergences[0]}"
        if not same_failure(again.failure, result.failure):
            got = "passed" if again.failure is None else f"raised {type(again.failure).__name__}"
            return f"replay {attempt} of the same schedule {got}"
        if again.choices != result.choices:
            return f"replay {attempt} made different scheduling choices"
    return None


def describe_failure(
    exploration: Exploration,
    result: RunResult,
    *,
    nodeid: str,
    strategy_text: str,
    replay_options: str = "",
) -> str:
    """The text attached to the failure: where, how to replay, and the swimlane."""
    from ..report import replay_command

    if exploration.replayed:
        shown = strategy_text.split(", ", 1)[-1]
        where = "pytest's cache" if exploration.replayed == "cache" else "its token"
        lines = [f"faultline: the schedule replayed from {where} failed ({shown})"]
    else:
        lines = [f"faultline: schedule {exploration.schedules} ({strategy_text}) failed"]
    if not exploration.reproducible:
        lines += [
            "faultline: this failure did NOT reproduce when its schedule was replayed: "
            + "; ".join(exploration.notes),
            "  something the scheduler does not control decides it (real I/O or sockets, "
            "threads started before the run, time or randomness outside the seed, busy waits); "
            "no replay token is given because it would not replay",
        ]
    else:
        if exploration.shrink_runs:
            lines.append(
                f"shrunk in {exploration.shrink_runs} runs to {exploration.preemptions} "
                f"preemption(s); the replay failed the same way twice"
            )
        else:
            lines.append(f"{exploration.preemptions} preemption(s)")
        lines.append(f"seed: {exploration.seed}  token: {exploration.token}")
        if nodeid:
            lines.append(f"replay: {replay_command(nodeid, exploration.token or '')}")
        if replay_options:
            call = f"faultline.explore(fn, token={exploration.token!r}{replay_options})"
            lines.append(f"replay in code: {call}")
        else:
            lines.append(f"replay in code: faultline.replay(fn, {exploration.token!r})")
    lines.extend(f"faultline: not controlled by the seed: {w}" for w in exploration.uncontrolled)
    who = result.sched.failure_thread
    if (
        who is not None
        and result.failure is not None
        and not isinstance(result.failure, DeadlockError)
    ):
        lines.append(f"raised in {who.title} at {_raise_site(result.failure)}")
    from .report import swimlane

    lines.append(swimlane(result.sched))
    return "\n".join(lines)


def _raise_site(exc: BaseException) -> str:
    site = "?"
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not runtime.is_internal(filename):
            site = f"{relative(filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return site


def attach(exc: BaseException, text: str) -> None:
    """Attach ``text`` to the exception's notes (shown under the traceback by pytest)."""
    exc.add_note(text)


def test_namespace(faultline: FaultContext) -> dict[str, Any] | None:
    """The globals of the test's module, found from its node id (for imported-by-name
    primitives such as ``from threading import Lock``)."""
    path = faultline.nodeid.split("::", 1)[0]
    if not path:
        return None
    suffix = os.path.normcase(os.path.normpath(path))
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and os.path.normcase(os.path.normpath(file)).endswith(suffix):
            return vars(module)
    return None
