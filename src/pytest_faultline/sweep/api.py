"""``faultline.sweep`` and the ``fault_sweep`` scenario: record, then sweep.

A sweep runs the body once without faults and records every site it reaches (:mod:`._probe`),
then re-runs it once per site and kind that applies there, and (``pairs=True``) with two faults
where the second site is still reached after the first fault, within ``budget`` seconds and
``max_runs`` runs. Each run has its own seed and token; a failing run is replayed once to check
that it reproduces; the first failure is raised with the report attached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _points, _raw
from .._context import EventKind
from ..decider import Decider, ReplayToken, derive_seed
from ..errors import FaultlineError, ScenarioError
from . import SWEEPS
from ._probe import Fault, Probe
from ._threads import thread_failures
from .kinds import FaultKind, parse_kinds
from .sites import THREAD, Site

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["Run", "Sweep", "SweepOptions", "install_fault_sweep", "sweep"]

SWEEP_STREAM = "sweep"
DEFAULT_MAX_PAIR_RUNS = 200
PROGRESS_EVERY_S = 5.0
NO_THREAD_SITES = (
    "no thread site: preempt found no place where another thread or task could run (an async "
    "test on pytest-asyncio's own loop is one thread: leave it unmarked, faultline runs it)"
)


def _number(value: object, *, whole: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if whole else isinstance(value, (int, float))


@dataclass(frozen=True)
class SweepOptions:
    """What a sweep injects and how long it may take.

    ``kinds``: the fault kinds (see :data:`~pytest_faultline.sweep.kinds.KINDS`; exception
    classes are raised at points and calls). ``targets``: callables (``"pkg.mod:Qual.name"``)
    whose calls are sites too. ``budget``: seconds for the whole sweep (None: the
    ``--faultline-budget`` setting, else no limit); ``max_runs``: fault runs at most. ``pairs``:
    also run two faults together, where both survive alone and the second site is still reached
    after the first fault (at most ``max_runs``, else 200, pair runs). ``verify``: replay each
    failing run once to check that its token reproduces it."""

    kinds: tuple[FaultKind, ...]
    targets: tuple[str, ...] = ()
    budget: float | None = None
    max_runs: int | None = None
    pairs: bool = False
    verify: bool = True

    @classmethod
    def build(
        cls,
        *,
        where: str = "sweep()",
        error: type[FaultlineError] = FaultlineError,
        kinds: object = None,
        targets: object = None,
        budget: object = None,
        max_runs: object = None,
        pairs: object = False,
        verify: object = True,
    ) -> SweepOptions:
        """Options from keyword values, checked; ``error`` names ``where`` and the fix."""
        try:
            parsed = parse_kinds(kinds, where=where)
        except FaultlineError as exc:
            raise error(str(exc)) from None
        if targets is None:
            targets = ()
        if not isinstance(targets, (list, tuple)) or not all(
            isinstance(t, str) and ":" in t for t in targets
        ):
            raise error(
                f"{where}: targets must be a list of callables named 'pkg.mod:Qual.name', "
                f"got {targets!r}"
            )
        if budget is not None and (not _number(budget, whole=False) or not budget > 0):  # type: ignore[operator]
            raise error(f"{where}: budget must be seconds > 0 or None, got {budget!r}")
        if max_runs is not None and (not _number(max_runs, whole=True) or max_runs < 1):  # type: ignore[operator]
            raise error(f"{where}: max_runs must be a whole number >= 1 or None, got {max_runs!r}")
        for name, value in (("pairs", pairs), ("verify", verify)):
            if not isinstance(value, bool):
                raise error(f"{where}: {name} must be True or False, got {value!r}")
        return cls(
            kinds=parsed,
            targets=tuple(targets),
            budget=None if budget is None else float(budget),  # type: ignore[arg-type]
            max_runs=max_runs,  # type: ignore[arg-type]
            pairs=bool(pairs),
            verify=bool(verify),
        )


@dataclass
class Run:
    """One run of the body under ``faults`` (empty: the recording run)."""

    faults: tuple[Fault, ...]
    sites: tuple[Site, ...]
    seed: int
    token: str
    failure: BaseException | None
    fired: int
    reached: frozenset[str]
    elapsed: float
    reproducible: bool | None = None  # None: not checked

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def outcome(self) -> str:
        if self.failure is not None:
            return "fail"
        return "pass" if self.fired == len(self.faults) else "unreached"

    def error_text(self) -> str:
        if self.failure is None:
            return ""
        first = str(self.failure).strip().splitlines()
        return f"{type(self.failure).__name__}: {first[0] if first else ''}".rstrip(": ")


@dataclass
class Sweep:
    """The outcome of a sweep: the sites, every run, the failures with their tokens, and how much
    of the space was covered (``complete`` is False when the budget or ``max_runs`` cut it)."""

    nodeid: str
    fault_kinds: tuple[FaultKind, ...]
    sites: list[Site] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    planned_singles: int = 0
    planned_pairs: int = 0
    pair_candidates: int = 0
    elapsed: float = 0.0
    record_elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)
    replayed: Run | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.fault_kinds)

    @property
    def failures(self) -> list[Run]:
        return [r for r in self.runs if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures and (self.replayed is None or self.replayed.passed)

    @property
    def singles(self) -> list[Run]:
        return [r for r in self.runs if len(r.faults) == 1]

    @property
    def pairs(self) -> list[Run]:
        return [r for r in self.runs if len(r.faults) == 2]

    @property
    def complete(self) -> bool:
        return len(self.singles) == self.planned_singles and len(self.pairs) == self.planned_pairs

    def summary(self) -> str:
        from .report import summary_line

        return summary_line(self)

    def report(self) -> str:
        """The site-by-kind table, the failures with their replay commands, the coverage."""
        from .report import format_sweep

        return format_sweep(self)

    def as_dict(self) -> dict[str, Any]:
        from .report import sweep_record

        return sweep_record(self)

    __str__ = summary


def sweep(
    context: FaultContext,
    fn: Callable[[], object],
    *,
    options: SweepOptions | None = None,
    raises: bool = True,
    progress: Callable[[str], object] | None = None,
    **given: Any,
) -> Sweep:
    """Run ``fn`` once to record its fault sites, then once per site and kind; raise the first
    failure with the report attached (or return it in the :class:`Sweep` with
    ``raises=False``). State that must be fresh for each run has to be created inside ``fn``."""
    __tracebackhide__ = True
    if options is None:
        options = SweepOptions.build(**given)
    elif given:
        raise FaultlineError(
            f"sweep(): give the options either as options=SweepOptions(...) or as keywords, "
            f"not both (got options= and {', '.join(sorted(given))})"
        )
    session = _Session(context, fn, options, progress)
    result = session.go()
    context.service(SWEEPS, lambda _: []).append(result.as_dict())
    first = result.replayed if result.replayed is not None else None
    if first is None or first.passed:
        first = result.failures[0] if result.failures else None
    if first is None:
        context.record(EventKind.SWEEP, "sweep", result.summary())
        return result
    context.record(EventKind.SWEEP_FAILURE, "sweep", result.summary())
    context.adopt_decider(session.deciders[id(first)])  # the report shows the failing run
    assert first.failure is not None
    _attach(first.failure, result.report())
    first.failure.faultline_sweep = result  # type: ignore[attr-defined]
    if raises:
        raise first.failure
    return result


class _Session:
    def __init__(
        self,
        context: FaultContext,
        fn: Callable[[], object],
        options: SweepOptions,
        progress: Callable[[str], object] | None,
    ) -> None:
        self.context = context
        self.fn = fn
        self.options = options
        self.progress = progress
        self.original = context.decider
        self.probe: Probe | None = None
        self.foreign: set[str] = set()
        self.deciders: dict[int, Decider] = {}
        budget = options.budget if options.budget is not None else context.settings.budget
        self.started = _raw.monotonic()
        self.deadline = None if budget is None else self.started + budget
        self.budget = budget
        self.result = Sweep(context.nodeid, options.kinds)
        self._last_progress = self.started
        self._first_progress = PROGRESS_EVERY_S
        self._progress_every = PROGRESS_EVERY_S
        self._progress_written = False
        if progress is None:
            from .session import live_progress

            live = live_progress()  # a long sweep shows its progress in pytest's terminal
            if live is not None:
                self.progress = live.write
                self._first_progress = live.first_after
                self._progress_every = live.every
        self._wrapped = False
        self.proxy_base = 0
        self.scheduled = any(kind.scheduled for kind in options.kinds)
        self.runner: Any = None  # runs the body under a scheduler, for a scheduled sweep

    # -- the steps -----------------------------------------------------------------------------

    def go(self) -> Sweep:
        __tracebackhide__ = True
        self._prepare()
        token = self.original.token_in
        if token is not None and SWEEP_STREAM in token.choices:
            replayed = self._replay(token)
            explicit = token == self.context.settings.replay
            if explicit or not replayed.passed:
                self.result.elapsed = _raw.monotonic() - self.started
                return self.result
        record = self._run(())
        self.result.record_elapsed = record.elapsed
        if record.failure is not None:
            _attach(
                record.failure,
                "faultline sweep: the body failed in its recording run, without any fault; a "
                "sweep needs a body that passes on its own",
            )
            raise record.failure
        self.result.sites = list(record.sites)
        if self.scheduled and not any(site.where == THREAD for site in record.sites):
            # A note, not a warning: swept session-wide, most tests run one thread.
            self.result.notes.append(NO_THREAD_SITES)
        singles = self._singles(record.sites)
        self.result.planned_singles = len(singles)
        survived: list[tuple[Fault, Site, Run]] = []
        for fault, site in singles:
            if self._out_of_room():
                break
            run = self._run((fault,))
            if run.passed and run.fired:
                survived.append((fault, site, run))
        if self.options.pairs and len(self.result.singles) == len(singles):
            pairs = self._pairs(survived)
            self.result.pair_candidates = len(pairs)
            cap = self.options.max_runs or DEFAULT_MAX_PAIR_RUNS
            self.result.planned_pairs = min(len(pairs), cap)
            for first, second in pairs[:cap]:
                if self._out_of_room(pairs=True):
                    break
                self._run((first, second))
        if len(self.result.singles) < len(singles) or len(self.result.pairs) < (
            self.result.planned_pairs
        ):
            why = "the budget" if self._past_deadline() else "max_runs"
            self.result.notes.append(f"stopped by {why}")
        self.result.elapsed = _raw.monotonic() - self.started
        if self._progress_written and self.progress is not None:
            from .report import progress_line

            self.progress(progress_line(self.result, self.result.elapsed, self.budget) + " (done)")
        return self.result

    def _singles(self, sites: tuple[Site, ...]) -> list[tuple[Fault, Site]]:
        from .sites import WHERE_CODES, stem_hash

        plans = []
        for site in sites:
            for index, kind in enumerate(self.options.kinds):
                if kind.applies(site):
                    fault = Fault(
                        index, WHERE_CODES[site.where], stem_hash(site.where, site.stem), site.hit
                    )
                    plans.append((fault, site))
        return plans

    def _pairs(self, survived: list[tuple[Fault, Site, Run]]) -> list[tuple[Fault, Fault]]:
        """Pairs that can influence each other: the second site comes after the first in the
        recording and is still reached in the first fault's own run."""
        order = {site.key: i for i, site in enumerate(self.result.sites)}
        pairs = []
        for first, site_a, run_a in survived:
            for second, site_b, _ in survived:
                if order[site_b.key] > order[site_a.key] and site_b.key in run_a.reached:
                    pairs.append((first, second))
        rng = self.original.random("sweep.pairs")
        rng.shuffle(pairs)  # which pairs a budget leaves out is drawn from the seed
        return pairs

    def _replay(self, token: ReplayToken) -> Run:
        values = token.choices[SWEEP_STREAM]
        if len(values) % 4 or not all(isinstance(v, int) for v in values):
            raise FaultlineError(f"replay token {token.encode()} holds no sweep run it can replay")
        faults = tuple(
            Fault(int(values[i]), int(values[i + 1]), int(values[i + 2]), int(values[i + 3]))
            for i in range(0, len(values), 4)
        )
        if any(f.kind >= len(self.options.kinds) for f in faults):
            raise FaultlineError(
                f"replay token {token.encode()} names a fault kind this sweep does not have; "
                f"replay it with the kinds it was recorded with ({', '.join(self.result.kinds)} "
                f"now)"
            )
        decider = Decider(token.seed, test=token.test, token=token)
        decider.pin(SWEEP_STREAM, list(values))  # so the run's own token names its faults
        run = self._once(faults, decider)
        self.deciders[id(run)] = decider
        self.result.replayed = run
        return run

    # -- one run -------------------------------------------------------------------------------

    def _run(self, faults: tuple[Fault, ...], *, decider: Decider | None = None) -> Run:
        if decider is None:
            key = "|".join(".".join(map(str, f.choices())) for f in faults) or "record"
            seed = derive_seed(self.original.seed, "sweep-run", key)
            decider = Decider(seed, test=self.original.test)
            values: list[int | float] = [v for f in faults for v in f.choices()]
            if values:
                decider.pin(SWEEP_STREAM, values)
        run = self._once(faults, decider)
        if faults:
            self.result.runs.append(run)
            if run.failure is not None and self.options.verify and decider.token_in is None:
                token = decider.token()
                again = self._once(faults, Decider(token.seed, test=token.test, token=token))
                run.reproducible = again.failure is not None and type(again.failure) is type(
                    run.failure
                )
        self.deciders[id(run)] = decider
        self._report_progress()
        return run

    def _once(self, faults: tuple[Fault, ...], decider: Decider) -> Run:
        from ..net import relay
        from ..net._socket_patches import set_observer as set_socket_observer

        probe = Probe(
            self.context,
            self.options.kinds,
            faults,
            recording=not faults and decider.token_in is None,
            foreign=set(self.foreign),
            proxy_base=self.proxy_base,
        )
        failure: BaseException | None = None
        started = _raw.monotonic()
        self.probe = probe
        previous_point = _points.set_observer(probe.on_point)
        if previous_point is not None:  # the thread scheduler's, when a sweep runs under it
            _points.set_observer(_chain(probe.on_point, previous_point))
        previous_socket = set_socket_observer(probe.on_socket)
        previous_proxy = relay.set_observer(probe.on_proxy_connection)
        try:
            with thread_failures() as died, self.context.use_decider(decider):
                if self.runner is not None:
                    failure = self.runner.run(probe, decider)
                else:
                    self.fn()
            if died and failure is None:  # the body passed, but a thread of it died of the fault
                failure = died[0]
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            failure = exc
        finally:
            relay.set_observer(previous_proxy)
            probe.finish()
            set_socket_observer(previous_socket)
            _points.set_observer(previous_point)
            self.probe = None
            self.foreign |= probe.labels
        return Run(
            faults=faults,
            sites=tuple(probe.sites) if probe.recording else tuple(s for _, s in probe.fired),
            seed=decider.seed,
            token=decider.token().encode(),
            failure=failure,
            fired=len(probe.fired),
            reached=frozenset(probe.reached),
            elapsed=_raw.monotonic() - started,
        )

    # -- setup, budget, progress ---------------------------------------------------------------

    def _prepare(self) -> None:
        from ..net import SOCKETS, socket_faults
        from ..net.proxies import PROXIES

        self.context.service(SOCKETS, socket_faults)  # socket operations are sites
        pool = self.context.peek(PROXIES)
        self.proxy_base = 0 if pool is None else len(pool.generated)
        if self.scheduled:
            from ._sched import ScheduledRuns

            self.runner = ScheduledRuns(self.context, self.fn)
        for path in self.options.targets:
            self._wrap(path)

    def _wrap(self, path: str) -> None:
        from ..targets import resolve

        target = resolve(path)

        def make_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True
                probe = self.probe
                if probe is not None:
                    probe.on_call(path)
                return original(*args, **kwargs)

            return wrapper

        target.install(make_wrapper)
        self.context.undo.push(target.restore, f"restore {path} after the sweep")

    def _past_deadline(self) -> bool:
        return self.deadline is not None and _raw.monotonic() > self.deadline

    def _out_of_room(self, *, pairs: bool = False) -> bool:
        if self._past_deadline():
            return True
        limit = self.options.max_runs
        if limit is None:
            return False
        done = len(self.result.pairs) if pairs else len(self.result.singles)
        return done >= limit

    def _report_progress(self) -> None:
        if self.progress is None:
            return
        now = _raw.monotonic()
        if not self._progress_written:
            if now - self.started < self._first_progress:
                return
        elif now - self._last_progress < self._progress_every:
            return
        self._last_progress = now
        self._progress_written = True
        from .report import progress_line

        self.progress(progress_line(self.result, now - self.started, self.budget))


def _chain(
    first: Callable[[str, dict[str, Any]], None],
    then: Callable[[str, dict[str, Any]], None] | None,
) -> Callable[[str, dict[str, Any]], None]:
    if then is None:
        return first

    def both(name: str, context: dict[str, Any]) -> None:
        first(name, context)
        then(name, context)

    return both


def _attach(exc: BaseException, text: str) -> None:
    from ..sched.explore import attach

    attach(exc, text)


def install_fault_sweep(context: FaultContext, options: SweepOptions) -> None:
    """The ``fault_sweep`` scenario: the test body is swept."""

    def wrapper(call: Callable[[], object]) -> object:
        __tracebackhide__ = True
        return sweep(context, call, options=options)

    context.wrap_body(wrapper)


@contextmanager
def _scenario_errors() -> Iterator[None]:
    try:
        yield
    except ScenarioError:
        raise
    except FaultlineError as exc:
        raise ScenarioError(str(exc)) from None
