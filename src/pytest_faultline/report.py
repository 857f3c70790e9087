"""What a failing test under faults tells the user: the report section, the JSON report, and
the cache of failing tokens replayed first on the next run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._context import format_event

if TYPE_CHECKING:
    # pytest is imported where it is used: a failing explore() outside a test run reports
    # through this module and must not import pytest.
    import pytest

    from .controller import Faultline

__all__ = ["JsonReport", "SessionReport", "TokenCache", "format_section", "test_record"]

CACHE_KEY = "faultline/tokens"
SECTION_EVENTS = 20
JSON_EVENTS = 1000
REPORT_VERSION = 1
REPORT_PATH_ERROR = (
    "pytest-faultline: cannot write the JSON report to {path}: {reason}. Give "
    "--faultline-report (or FAULTLINE_REPORT, or faultline_report in the ini file) a file path "
    "in a directory you can write to"
)


def replay_command(nodeid: str, token: str) -> str:
    return f"pytest {shlex.quote(nodeid)} --faultline-replay={token}"


def test_record(faultline: Faultline) -> dict[str, Any]:
    """The JSON-ready facts of one test's controller (travels on reports, also from xdist)."""
    token = faultline.token()
    return {
        "nodeid": faultline.nodeid,
        "seed": faultline.seed,
        "attempt": faultline.attempt,
        "rerun_seed": faultline.settings.rerun_seed,
        "token": token,
        "replay": replay_command(faultline.nodeid, token),
        "replayed": faultline.decider.token_in is not None,
        "divergences": list(faultline.decider.divergences),
        "scenarios": [{"name": n, "params": _jsonable(p)} for n, p in faultline.scenarios],
        "events": [e.as_dict() for e in faultline.events[-JSON_EVENTS:]],
        "events_total": len(faultline.events),
        "faults": sum(1 for e in faultline.events if e.is_fault),
        "unreached": faultline.unreached(),
        "sweeps": _sweeps(faultline),
    }


def _sweeps(faultline: Faultline) -> list[dict[str, Any]]:
    from .sweep import SWEEPS  # light: the sweep's machinery is not imported

    return list(faultline.peek(SWEEPS) or ())


test_record.__test__ = False  # type: ignore[attr-defined]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return repr(value)
    return value


def format_section(record: dict[str, Any]) -> str:
    lines = [f"seed:   {record['seed']}", f"token:  {record['token']}"]
    if record.get("attempt", 1) > 1:
        lines.append(
            f"rerun:  attempt {record['attempt']}, with its own seed (derived from the test's "
            f"and the attempt; --faultline-rerun-seed=same keeps the first one)"
            if record.get("rerun_seed", "fresh") == "fresh"
            else f"rerun:  attempt {record['attempt']}, with the first attempt's seed"
        )
    if record["scenarios"]:
        shown = "; ".join(
            n["name"] + "(" + ", ".join(f"{k}={v!r}" for k, v in n["params"].items()) + ")"
            for n in record["scenarios"]
        )
        lines.append(f"scenarios: {shown}")
    for message in record["divergences"]:
        lines.append(f"replay diverged: {message}")
    events = record["events"][-SECTION_EVENTS:]
    total = record["events_total"]
    if events:
        lines.append(f"last {len(events)} of {total} fault events:")
        indent = "  "
        for e in events:
            if e["kind"] == "example":  # a Hypothesis example: its events are listed under it
                lines.append(f"  example {e['name']}: {e['detail']}")
                indent = "    "
                continue
            lines.append(
                indent + format_event(e["time"], e["thread"], e["kind"], e["name"], e["detail"])
            )
    else:
        lines.append("no fault fired in this test")
    if record["unreached"]:
        lines.append("armed but never reached: " + ", ".join(record["unreached"]))
    lines.append(f"replay: {record['replay']}")
    return "\n".join(lines)


class TokenCache:
    """Failing tests' tokens in pytest's cache, replayed first on the next run."""

    def __init__(self, config: pytest.Config, *, clear: bool) -> None:
        self._cache = getattr(config, "cache", None)
        self.tokens: dict[str, str] = {}
        if self._cache is not None and not clear:
            stored = self._cache.get(CACHE_KEY, {})
            if isinstance(stored, dict):
                self.tokens = {k: v for k, v in stored.items() if isinstance(v, str)}
        self.dirty = clear and self._cache is not None

    def update(self, nodeid: str, token: str | None) -> None:
        if token is None:
            if self.tokens.pop(nodeid, None) is not None:
                self.dirty = True
        elif self.tokens.get(nodeid) != token:
            self.tokens[nodeid] = token
            self.dirty = True

    def save(self) -> None:
        if self._cache is not None and self.dirty:
            self._cache.set(CACHE_KEY, self.tokens)
            self.dirty = False


OUTCOME_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "error": 4, "failed": 5}


class JsonReport:
    """Writes ``--faultline-report``."""

    def __init__(self, path: Path, seed: int) -> None:
        self.path = path
        self.seed = seed
        self._target = path.absolute()  # where it was asked for, even if a test chdirs
        _check_writable(self._target, path)

    def write(self, tests: list[dict[str, Any]]) -> None:
        self._target.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": REPORT_VERSION, "seed": self.seed, "tests": tests}
        self._target.write_text(json.dumps(data, indent=2, default=repr) + "\n", encoding="utf-8")


def _check_writable(target: Path, shown: Path) -> None:
    """At the start of the run: can the report be written at ``target``? A usage error if not,
    so a run does not learn it after every test ran."""
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if target.is_dir():
        reason = "it is a directory"
    elif not ancestor.is_dir():
        reason = f"{ancestor} is a file, not a directory"
    else:
        try:
            existed = target.exists()
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "ab"):  # appends nothing: an existing report stays as it is
                pass
            if not existed:
                target.unlink()
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    import pytest

    raise pytest.UsageError(REPORT_PATH_ERROR.format(path=shown, reason=reason))


def suite_of(location: str, rootpath: Path) -> str:
    """The suite a test file belongs to: the nearest enclosing project (a directory with its own
    pyproject.toml or setup.py, below the rootdir), else the file's first directory."""
    parts = Path(location).parts
    for depth in range(len(parts) - 1, 0, -1):
        candidate = rootpath.joinpath(*parts[:depth])
        if (candidate / "pyproject.toml").exists() or (candidate / "setup.py").exists():
            return Path(*parts[:depth]).as_posix()
    return parts[0] if len(parts) > 1 else "."


def format_summary(tests: list[dict[str, Any]], rootpath: Path) -> list[str]:
    """The --faultline-summary table, then one line per unexpected failure with its replay."""
    columns = ("tests", "faults", "caught", "survived", "no fault", "unexpected")
    rows: dict[str, list[int]] = {}
    unexpected: list[dict[str, Any]] = []
    for test in tests:
        row = rows.setdefault(suite_of(test["location"], rootpath), [0] * len(columns))
        row[0] += 1
        row[1] += test["faults"]
        outcome = test["outcome"]
        if outcome == "xfailed":
            # Caught means the fault did it: an expected failure with no fault injected (a
            # typo'd target, an unrelated crash) is not a catch.
            row[2 if test["faults"] else 4] += 1
        elif outcome == "passed":
            row[3 if test["faults"] else 4] += 1
        elif outcome in ("failed", "error", "xpassed"):
            row[5] += 1
            unexpected.append(test)
    width = max([len("suite"), *(len(s) for s in rows)])
    lines = ["suite".ljust(width) + "".join(f"{c:>12}" for c in columns)]
    for suite in sorted(rows):
        lines.append(suite.ljust(width) + "".join(f"{n:>12}" for n in rows[suite]))
    if unexpected:
        lines.append("")
        lines.append("unexpected failures under faults (replay each with its command):")
        lines.extend(f"  {t['outcome'].upper()} {t['replay']}" for t in unexpected)
    lines.append("")
    lines.append(
        "tests: only tests that used faultline (its fixture, a marker or --faultline); "
        "faults: faults injected"
    )
    lines.append(
        "caught: expected failures (xfail) with at least one fault injected; survived: passed "
        "with faults injected; no fault: passed or xfailed, but no fault fired"
    )
    return lines


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return report.outcome


class SessionReport:
    """Session-wide reporting, registered as a plugin by ``pytest_configure``. Runs on the xdist
    controller too, from the records that travel on each test report."""

    def __init__(self, config: pytest.Config, tokens: TokenCache, json_report: JsonReport | None):
        self.config = config
        self.tokens = tokens
        self.json_report = json_report
        self.replay_matched: list[str] = []
        self.tests: dict[str, dict[str, Any]] = {}
        self._failed: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "faultline", None)
        if not isinstance(record, dict):
            return
        outcome = _outcome(report)
        if outcome in ("failed", "error"):
            self._failed.add(report.nodeid)
            self.tokens.update(report.nodeid, record["token"])
        elif report.when == "teardown" and report.nodeid not in self._failed:
            self.tokens.update(report.nodeid, None)
        if record["replayed"] and report.when == "setup":
            self.replay_matched.append(report.nodeid)
        entry = self.tests.setdefault(report.nodeid, {**record, "outcome": "passed"})
        entry.update(record, location=report.location[0])
        if OUTCOME_RANK.get(outcome, 0) > OUTCOME_RANK.get(entry["outcome"], 0):
            entry["outcome"] = outcome

    def pytest_sessionfinish(self) -> None:
        self.tokens.save()
        if self.json_report is not None:
            self.json_report.write(list(self.tests.values()))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .settings import SETTINGS_KEY

        settings = self.config.stash[SETTINGS_KEY]
        replay = settings.replay
        if replay is not None and not any(
            self.tokens_match(nodeid, replay.test) for nodeid in self.replay_matched
        ):
            terminalreporter.write_sep("-", "faultline", yellow=True)
            terminalreporter.write_line(
                f"the replay token {replay.encode()} matched no test that ran: it was recorded "
                f"for a test whose id hashes to {replay.test}; select that test (the failure "
                f"report prints the exact command)"
            )
        if settings.summary:
            terminalreporter.write_sep("=", "faultline summary")
            tests = list(self.tests.values())
            lines = format_summary(tests, self.config.rootpath) if tests else []
            for line in lines or ["no test ran under faults"]:
                terminalreporter.write_line(line)
        swept = [t for t in self.tests.values() if t.get("sweeps")]
        if swept:
            terminalreporter.write_sep("-", "faultline sweeps")
            for test in swept:
                for done in test["sweeps"]:
                    terminalreporter.write_line(f"{test['nodeid']}: {done['summary']}")
        if self.json_report is not None:
            terminalreporter.write_line(
                f"faultline: JSON report written to {self.json_report.path}"
            )

    @staticmethod
    def tokens_match(nodeid: str, fingerprint: str) -> bool:
        from .decider import test_fingerprint

        return test_fingerprint(nodeid) == fingerprint
