"""One options object for an exploration: which schedules to try, how many, for how long.

Shared by the ``thread_preemption`` scenario, ``faultline.explore()`` and ``faultline.replay()``
(and by asyncio task schedules), so defaults and validation live in one place.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import FaultlineError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "DEFAULT_RUNS",
    "DEFAULT_STRATEGY",
    "PREEMPT_MODES",
    "STRATEGIES",
    "TASK_STRATEGY",
    "ExploreOptions",
]

STRATEGIES = ("random", "pct", "dfs")
DEFAULT_STRATEGY = "random"  # fewest schedules on the benchmark's bugs (bench_sched.py)
# asyncio tasks: pct. Level with random on bench_async.py's in-memory races (sums of medians 70
# and 60), and the only one that finds races that need one connection's replies held over
# several round trips of another (redis.asyncio against redis-server: pct 6 of 6 within 500
# schedules, random 0 of 6), because it keeps a low-priority task waiting across many decisions.
TASK_STRATEGY = "pct"
PREEMPT_MODES = ("sync", "lines", "bytecode", "awaits")
DEFAULT_RUNS = 100
DEFAULT_DEPTH = 3
DEFAULT_STALL_S = 10.0
DEFAULT_MAX_STEPS = 200_000


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


# A plain frozen class, not a dataclass: this module is on the path of the first exploration of
# a process, where building a frozen dataclass cost about a millisecond.
_FIELDS = (
    "runs",
    "strategy",
    "depth",
    "max_preemptions",
    "preempt",
    "modules",
    "budget",
    "stall_timeout",
    "max_steps",
    "shrink",
    "rebind",
)


class ExploreOptions:
    """How an exploration searches: ``runs`` schedules (None: the ``--faultline-runs`` setting,
    else 100) chosen by ``strategy`` ("random", "pct" with bug depth ``depth``, or "dfs" with at
    most ``max_preemptions`` preemptions per schedule); scheduling points at synchronisation
    operations (``preempt="sync"``), also at every line of ``modules`` (``"lines"``), also
    between the bytecodes of ``modules`` that touch shared state (``"bytecode"``), or, for
    asyncio tasks, at every ``await`` in ``modules`` (``"awaits"``); the
    search stops after ``budget`` seconds; a run that makes no progress for ``stall_timeout``
    seconds, or takes more than ``max_steps`` steps, is reported; a failure is shrunk unless
    ``shrink=False``. Names bound at import to ``time``/``threading`` functions (``from time
    import monotonic``, ``timer=time.monotonic`` defaults) are rebound for each run in the test's
    module, in ``modules`` and in the modules named in ``rebind``. Immutable: :meth:`replace`
    makes a changed copy."""

    __slots__ = _FIELDS

    runs: int | None
    strategy: str
    depth: int
    max_preemptions: int | None
    preempt: str
    modules: tuple[str, ...]
    budget: float | None
    stall_timeout: float
    max_steps: int
    shrink: bool
    rebind: tuple[str, ...]

    def __init__(
        self,
        runs: int | None = None,
        strategy: str = DEFAULT_STRATEGY,
        depth: int = DEFAULT_DEPTH,
        max_preemptions: int | None = None,
        preempt: str = "sync",
        modules: tuple[str, ...] = (),
        budget: float | None = None,
        stall_timeout: float = DEFAULT_STALL_S,
        max_steps: int = DEFAULT_MAX_STEPS,
        shrink: bool = True,
        rebind: tuple[str, ...] = (),
    ) -> None:
        values = (
            runs,
            strategy,
            depth,
            max_preemptions,
            preempt,
            modules,
            budget,
            stall_timeout,
            max_steps,
            shrink,
            rebind,
        )
        for name, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"ExploreOptions is immutable: cannot set {name!r}; use options.replace({name}=...)"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ExploreOptions is immutable: cannot delete {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExploreOptions):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"ExploreOptions({shown})"

    def __reduce__(self) -> tuple[type[ExploreOptions], tuple[object, ...]]:
        return (ExploreOptions, self._values())  # copy and pickle go through __init__

    def replace(self, **changes: Any) -> ExploreOptions:
        """A copy with ``changes`` (not checked: :meth:`build` checks keywords)."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return ExploreOptions(**values)

    @classmethod
    def build(
        cls,
        *,
        where: str = "explore()",
        error: type[FaultlineError] = FaultlineError,
        **given: Any,
    ) -> ExploreOptions:
        """Options from keyword arguments, checked; ``error`` names ``where`` and the fix."""
        known = set(_FIELDS)
        unknown = sorted(set(given) - known)
        if unknown:
            raise error(
                f"{where}: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; the options are {', '.join(sorted(known))}"
            )
        for key in ("modules", "rebind"):
            if key in given and given[key] is not None:
                modules = given[key]
                if not isinstance(modules, (list, tuple)) or not all(
                    isinstance(m, str) for m in modules
                ):
                    raise error(
                        f"{where}: {key} must be a list of module names like ['pkg.mod'], "
                        f"got {modules!r}"
                    )
                given[key] = tuple(modules)
            elif key in given:
                given[key] = ()
        options = cls(**given)
        options.check(where=where, error=error)
        return options

    def check(self, *, where: str, error: type[FaultlineError] = FaultlineError) -> None:
        """Raise ``error`` for the first option that is not usable."""
        if self.runs is not None and not _whole(self.runs, 1):
            raise error(f"{where}: runs must be a whole number >= 1, got {self.runs!r}")
        if self.strategy not in STRATEGIES:
            raise error(
                f"{where}: unknown strategy {self.strategy!r}; use one of "
                f"{', '.join(map(repr, STRATEGIES))} "
                f"(replay a token with faultline.replay(fn, token) or --faultline-replay)"
            )
        if not _whole(self.depth, 1):
            raise error(
                f"{where}: depth must be a whole number >= 1 (pct's bug depth), got {self.depth!r}"
            )
        if self.max_preemptions is not None and not _whole(self.max_preemptions, 0):
            raise error(
                f"{where}: max_preemptions must be a whole number >= 0 or None, "
                f"got {self.max_preemptions!r}"
            )
        if self.preempt not in PREEMPT_MODES:
            raise error(
                f"{where}: preempt must be 'sync' (switch at synchronisation operations), "
                f"'lines' (also at every line of modules=[...]), 'bytecode' (also between "
                f"the bytecodes of modules=[...]) or 'awaits' (asyncio: also at every await of "
                f"modules=[...]), got {self.preempt!r}"
            )
        if self.preempt == "awaits" and not self.modules:
            raise error(
                f"{where}: preempt='awaits' needs modules=['pkg.mod', ...]: the modules whose "
                f"every await becomes a scheduling point"
            )
        if self.preempt in ("lines", "bytecode") and not self.modules:
            what = "line" if self.preempt == "lines" else "shared-state bytecode"
            raise error(
                f"{where}: preempt={self.preempt!r} needs modules=['pkg.mod', ...]: the modules "
                f"whose every {what} becomes a scheduling point (tracing every module would be "
                f"far too slow)"
            )
        if self.budget is not None and (
            not isinstance(self.budget, (int, float))
            or isinstance(self.budget, bool)
            or not self.budget > 0
        ):
            raise error(f"{where}: budget must be seconds > 0 or None, got {self.budget!r}")
        if (
            not isinstance(self.stall_timeout, (int, float))
            or isinstance(self.stall_timeout, bool)
            or not self.stall_timeout > 0
        ):
            raise error(f"{where}: stall_timeout must be seconds > 0, got {self.stall_timeout!r}")
        if not _whole(self.max_steps, 1):
            raise error(f"{where}: max_steps must be a whole number >= 1, got {self.max_steps!r}")
        if not isinstance(self.shrink, bool):
            raise error(f"{where}: shrink must be True or False, got {self.shrink!r}")
        for key, names in (("modules", self.modules), ("rebind", self.rebind)):
            for name in names:
                try:
                    importlib.import_module(name)
                except ImportError as exc:
                    raise error(
                        f"{where}: cannot import module {name!r} named in {key}=: {exc}"
                    ) from None

    def resolved(self, settings: Settings) -> ExploreOptions:
        """These options with what the session's settings fill in (runs, budget)."""
        return self.replace(
            runs=self.runs or settings.param_runs or DEFAULT_RUNS,
            budget=self.budget if self.budget is not None else settings.budget,
        )

    @property
    def run_count(self) -> int:
        return self.runs or DEFAULT_RUNS

    def describe(self) -> str:
        """How the search went, for the report: 'of up to 100, random, preempt=sync'."""
        text = self.strategy + (f", depth {self.depth}" if self.strategy == "pct" else "")
        text = f"of up to {self.run_count}, {text}"
        if self.strategy == "dfs":
            text += f", max_preemptions {self.max_preemptions}"
        return text + f", preempt={self.preempt}"

    def replay_arguments(self) -> str:
        """The keyword arguments a replay needs besides the token (what the schedule depends
        on), as source text: '' or ", preempt='lines', modules=['pkg.mod']"."""
        if self.preempt == "sync":
            return ""
        return f", preempt={self.preempt!r}, modules={list(self.modules)!r}"
