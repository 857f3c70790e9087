"""Options, ini keys and environment variables, and the one place their precedence is decided.

Precedence: marker > CLI > ``FAULTLINE_*`` env > ini > default. Markers are applied per test by
the controller; this module resolves the rest into a frozen :class:`Settings`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

# pytest's StashKey itself, without importing pytest: the controller (and so ``explore()`` from
# plain code outside a test run) reads Settings, and importing pytest costs ~0.1 s.
from _pytest.stash import StashKey

from ._record import FrozenRecord
from .errors import ReplayTokenError

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from .decider import ReplayToken

__all__ = ["OPTIONS", "SETTINGS_KEY", "Settings", "add_options", "resolve_settings"]

BACKENDS = ("embedded", "toxiproxy")
DEFAULT_BACKEND = "embedded"
MARKER_LINE = (
    "faultline(name, **params): apply the fault scenario `name` with `params` to this test "
    "(stackable; 'pytest --faultline-list' lists scenarios and their parameters)"
)


def _seed(text: str) -> int:
    from .decider import SEED_LIMIT  # only when a seed is given: the plugin loads without it

    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"must be a whole number from 0 to 2**64-1, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"must be a whole number from 0 to 2**64-1, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be a whole number >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number of seconds > 0, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _backend(text: str) -> str:
    if text not in BACKENDS:
        raise ValueError(f"must be one of {', '.join(BACKENDS)}, got {text!r}")
    return text


def _url(text: str) -> str:
    from urllib.parse import urlparse  # only when a URL is given: explore() needs none

    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.port is None:
        raise ValueError(f"must look like http://HOST:PORT, got {text!r}")
    return text.rstrip("/")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError(f"must name one or more scenarios separated by commas, got {text!r}")
    return names


def _sweep_kinds(text: str) -> tuple[str, ...]:
    from .sweep.kinds import KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        shown = f"unknown kind {unknown[0]!r}: " if unknown else ""
        raise ValueError(
            f"{shown}must name fault kinds separated by commas, among {', '.join(KINDS)}; "
            f"got {text!r}"
        )
    return kinds


def _token(text: str) -> ReplayToken:
    from .decider import ReplayToken

    try:
        return ReplayToken.decode(text)
    except ReplayTokenError as exc:
        raise ValueError(str(exc)) from None


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


RERUN_SEEDS = ("fresh", "same")


def _rerun_seed(text: str) -> str:
    if text not in RERUN_SEEDS:
        raise ValueError(f"must be one of {', '.join(RERUN_SEEDS)}, got {text!r}")
    return text


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("must be a file path")
    from pathlib import Path

    return Path(text)


# Written out, not @dataclass: the import of the controller is on every pytest start (_record.py).
class OptionSpec(FrozenRecord):
    __slots__ = __match_args__ = ("dest", "flag", "ini", "env", "parse", "metavar", "help")
    dest: str
    flag: str
    ini: str | None
    env: str | None
    parse: Callable[[str], Any]
    metavar: str
    help: str

    def __init__(
        self,
        dest: str,
        flag: str,
        ini: str | None,
        env: str | None,
        parse: Callable[[str], Any],
        metavar: str,
        help: str,
    ) -> None:
        self._set(dest, flag, ini, env, parse, metavar, help)


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "scenarios",
        "--faultline",
        "faultline_scenarios",
        "FAULTLINE_SCENARIOS",
        _names,
        "NAME[,NAME]",
        "apply these fault scenarios to every collected test",
    ),
    OptionSpec(
        "seed",
        "--faultline-seed",
        "faultline_seed",
        "FAULTLINE_SEED",
        _seed,
        "N",
        "session seed (default: random, shown in the header); each test mixes in its id",
    ),
    OptionSpec(
        "replay",
        "--faultline-replay",
        None,
        "FAULTLINE_REPLAY",
        _token,
        "TOKEN",
        "replay the run recorded in TOKEN (printed with every failure under faults)",
    ),
    OptionSpec(
        "runs",
        "--faultline-runs",
        "faultline_runs",
        "FAULTLINE_RUNS",
        _positive_int,
        "N",
        "default number of runs for scenarios that explore (thread_preemption)",
    ),
    OptionSpec(
        "budget",
        "--faultline-budget",
        "faultline_budget",
        "FAULTLINE_BUDGET",
        _positive_float,
        "SECONDS",
        "time budget per exploring test; the search stops there",
    ),
    OptionSpec(
        "backend",
        "--faultline-backend",
        "faultline_backend",
        "FAULTLINE_BACKEND",
        _backend,
        "|".join(BACKENDS),
        "where faultline.proxy() makes proxies (default: embedded)",
    ),
    OptionSpec(
        "toxiproxy_url",
        "--toxiproxy-url",
        "toxiproxy_url",
        "TOXIPROXY_URL",
        _url,
        "URL",
        "Toxiproxy server API for the toxiproxy backend, e.g. http://127.0.0.1:8474",
    ),
    OptionSpec(
        "report",
        "--faultline-report",
        "faultline_report",
        "FAULTLINE_REPORT",
        _path,
        "PATH",
        "write a JSON report of every test run under faults to PATH",
    ),
    OptionSpec(
        "sweep",
        "--faultline-sweep",
        "faultline_sweep",
        "FAULTLINE_SWEEP",
        _sweep_kinds,
        "KIND[,KIND]",
        "sweep every test marked faultline_sweep (every collected test with "
        "--faultline-sweep-all) with these fault kinds: record its fault sites, then re-run it "
        "once per site and kind",
    ),
    OptionSpec(
        "strict",
        "--faultline-strict",
        "faultline_strict",
        "FAULTLINE_STRICT",
        _bool,
        "true|false",
        "fail (not just warn) when an armed target is never reached",
    ),
)
OPTIONS += (
    OptionSpec(
        "rerun_seed",
        "--faultline-rerun-seed",
        "faultline_rerun_seed",
        "FAULTLINE_RERUN_SEED",
        _rerun_seed,
        "|".join(RERUN_SEEDS),
        "what a rerun of a failed test (pytest-rerunfailures, flaky) draws from: 'fresh' (default)"
        " a seed derived from the test's seed and the attempt, printed and replayable; 'same' the"
        " first attempt's seed, so every attempt meets the same faults",
    ),
)
SUMMARY_OPTION = "--faultline-summary"
SUMMARY_HELP = (
    "end the run with a table per suite (example project or test directory): faults injected, "
    "expected failures caught, tests that survived their faults, and the tokens of any "
    "unexpected failure"
)
SKIP_UNAVAILABLE_OPTION = "--toxiproxy-skip-unavailable"
SKIP_UNAVAILABLE_HELP = (
    "skip (instead of fail) tests whose Toxiproxy server cannot be reached, with the backend "
    "toxiproxy"
)
LIST_OPTION = "--faultline-list"
CACHE_CLEAR_OPTION = "--faultline-cache-clear"
SWEEP_ALL_OPTION = "--faultline-sweep-all"
SWEEP_ALL_HELP = (
    "with --faultline-sweep: sweep every collected test, not only those marked faultline_sweep "
    "(a cost estimate is printed first)"
)
SWEEP_MARKER_LINE = (
    "faultline_sweep(**params): opt this test in to --faultline-sweep (params as for the "
    "fault_sweep scenario: targets, budget, max_runs, pairs)"
)
LOCKDEP_OPTION = "--faultline-lockdep"
LOCKDEP_HELP = (
    "watch the order locks are taken in across the whole session (one graph for all tests); "
    "the terminal summary lists every lock-order inversion and the session fails on one"
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultline", "fault injection (pytest-faultline)")
    for spec in OPTIONS:
        group.addoption(
            spec.flag,
            dest=f"faultline_{spec.dest}",
            metavar=spec.metavar,
            default=None,
            help=spec.help,
        )
        if spec.ini:
            parser.addini(spec.ini, spec.help, type="string", default="")
    group.addoption(
        SUMMARY_OPTION,
        action="store_true",
        dest="faultline_summary",
        default=False,
        help=SUMMARY_HELP + " (also FAULTLINE_SUMMARY=1 or ini faultline_summary = true)",
    )
    parser.addini("faultline_summary", SUMMARY_HELP, type="bool", default=False)
    group.addoption(
        SKIP_UNAVAILABLE_OPTION,
        action="store_true",
        dest="faultline_toxiproxy_skip_unavailable",
        default=False,
        help=SKIP_UNAVAILABLE_HELP
        + " (also FAULTLINE_TOXIPROXY_SKIP_UNAVAILABLE=1 or ini toxiproxy_skip_unavailable)",
    )
    parser.addini("toxiproxy_skip_unavailable", SKIP_UNAVAILABLE_HELP, type="bool", default=False)
    group.addoption(
        LIST_OPTION,
        action="store_true",
        dest="faultline_list",
        default=False,
        help="list every fault scenario with its parameters, and exit",
    )
    group.addoption(
        CACHE_CLEAR_OPTION,
        action="store_true",
        dest="faultline_cache_clear",
        default=False,
        help="forget the stored replay tokens of failing tests",
    )
    group.addoption(
        SWEEP_ALL_OPTION,
        action="store_true",
        dest="faultline_sweep_all",
        default=False,
        help=SWEEP_ALL_HELP,
    )
    group.addoption(
        LOCKDEP_OPTION,
        action="store_true",
        dest="faultline_lockdep",
        default=False,
        help=LOCKDEP_HELP,
    )


# Written out, not @dataclass: the import of the controller is on every pytest start (_record.py).
class Settings(FrozenRecord):
    """The resolved options of a session (immutable: :meth:`replace` makes a changed copy)."""

    __slots__ = __match_args__ = (
        "seed",
        "seed_origin",
        "scenarios",
        "replay",
        "param_runs",
        "budget",
        "backend",
        "toxiproxy_url",
        "report",
        "strict",
        "cache_clear",
        "summary",
        "lockdep",
        "sweep",
        "sweep_all",
        "toxiproxy_skip_unavailable",
        "rerun_seed",
    )
    seed: int
    seed_origin: str
    scenarios: tuple[str, ...]
    replay: ReplayToken | None
    param_runs: int | None
    budget: float | None
    backend: str
    toxiproxy_url: str | None
    report: Path | None
    strict: bool
    cache_clear: bool
    summary: bool
    lockdep: bool
    sweep: tuple[str, ...]
    sweep_all: bool
    toxiproxy_skip_unavailable: bool
    rerun_seed: str

    def __init__(
        self,
        seed: int,
        seed_origin: str,
        scenarios: tuple[str, ...] = (),
        replay: ReplayToken | None = None,
        param_runs: int | None = None,
        budget: float | None = None,
        backend: str = DEFAULT_BACKEND,
        toxiproxy_url: str | None = None,
        report: Path | None = None,
        strict: bool = False,
        cache_clear: bool = False,
        summary: bool = False,
        lockdep: bool = False,
        sweep: tuple[str, ...] = (),
        sweep_all: bool = False,
        toxiproxy_skip_unavailable: bool = False,
        rerun_seed: str = "fresh",
    ) -> None:
        self._set(
            seed,
            seed_origin,
            scenarios,
            replay,
            param_runs,
            budget,
            backend,
            toxiproxy_url,
            report,
            strict,
            cache_clear,
            summary,
            lockdep,
            sweep,
            sweep_all,
            toxiproxy_skip_unavailable,
            rerun_seed,
        )

    def param_defaults(self) -> dict[str, object]:
        """Scenario parameters these settings fill when a marker leaves them out."""
        return {} if self.param_runs is None else {"runs": self.param_runs}


SETTINGS_KEY = StashKey[Settings]()


def resolve_settings(
    config: pytest.Config, env: Mapping[str, str] | None = None, shared_seed: int | None = None
) -> Settings:
    """Read every option in precedence order; ``pytest.UsageError`` names a bad value's origin."""
    import pytest

    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for spec in OPTIONS:
        candidates: list[tuple[str, Any]] = [
            (spec.flag, config.getoption(f"faultline_{spec.dest}"))
        ]
        if spec.env:
            candidates.append((f"the {spec.env} environment variable", env.get(spec.env)))
        if spec.ini:
            where = f"'{spec.ini}' in {config.inipath.name if config.inipath else 'the ini file'}"
            candidates.append((where, config.getini(spec.ini) or None))
        for origin, raw in candidates:
            if raw is None or raw == "":
                continue
            try:
                values[spec.dest] = spec.parse(str(raw))
            except ValueError as exc:
                raise pytest.UsageError(f"pytest-faultline: {origin} {exc}") from None
            origins[spec.dest] = origin
            break
    if shared_seed is not None:
        seed, seed_origin = shared_seed, "shared by the xdist controller"
    elif "seed" in values:
        seed, seed_origin = values["seed"], origins["seed"]
    else:
        seed, seed_origin = random.SystemRandom().randrange(2**32), "random"
    return Settings(
        seed=seed,
        seed_origin=seed_origin,
        scenarios=values.get("scenarios", ()),
        replay=values.get("replay"),
        param_runs=values.get("runs"),
        budget=values.get("budget"),
        backend=values.get("backend", DEFAULT_BACKEND),
        toxiproxy_url=values.get("toxiproxy_url"),
        report=values.get("report"),
        strict=values.get("strict", False),
        cache_clear=bool(config.getoption("faultline_cache_clear")),
        summary=_flag(config, env, "faultline_summary", "FAULTLINE_SUMMARY", "faultline_summary"),
        toxiproxy_skip_unavailable=_flag(
            config,
            env,
            "faultline_toxiproxy_skip_unavailable",
            "FAULTLINE_TOXIPROXY_SKIP_UNAVAILABLE",
            "toxiproxy_skip_unavailable",
        ),
        lockdep=bool(config.getoption("faultline_lockdep")),
        sweep=values.get("sweep", ()),
        sweep_all=bool(config.getoption("faultline_sweep_all")),
        rerun_seed=values.get("rerun_seed", "fresh"),
    )


def _flag(config: pytest.Config, env: Mapping[str, str], dest: str, var: str, ini: str) -> bool:
    """A switch: on the command line, else the environment variable, else the ini key."""
    import pytest

    if config.getoption(dest):
        return True
    if env.get(var):
        try:
            return _bool(env[var])
        except ValueError as exc:
            raise pytest.UsageError(
                f"pytest-faultline: the {var} environment variable {exc}"
            ) from None
    try:
        return bool(config.getini(ini))
    except (ValueError, pytest.UsageError) as exc:
        # pytest's own message ("invalid truth value 'maybe'") names neither key nor file
        # (pytest 9.2 raises it as a UsageError, earlier versions as a ValueError).
        where = config.inipath.name if config.inipath else "the ini file"
        raise pytest.UsageError(
            f"pytest-faultline: '{ini}' in {where} must be true or false ({exc})"
        ) from None
