"""What a failing test under faults tells the user: the report section, the JSON report, and
the cache of failing tokens replayed first on the next run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .controller import Faultline

__all__ = ["JsonReport", "SessionReport", "TokenCache", "format_section", "test_record"]

CACHE_KEY = "faultline/tokens"
SECTION_EVENTS = 20
JSON_EVENTS = 1000
REPORT_VERSION = 1


def replay_command(nodeid: str, token: str) -> str:
    return f"pytest {shlex.quote(nodeid)} --faultline-replay={token}"


def test_record(faultline: Faultline) -> dict[str, Any]:
    """The JSON-ready facts of one test's controller (travels on reports, also from xdist)."""
    token = faultline.token()
    return {
        "nodeid": faultline.nodeid,
        "seed": faultline.seed,
        "token": token,
        "replay": replay_command(faultline.nodeid, token),
        "replayed": faultline.decider.token_in is not None,
        "divergences": list(faultline.decider.divergences),
        "scenarios": [{"name": n, "params": _jsonable(p)} for n, p in faultline.scenarios],
        "events": [e.as_dict() for e in faultline.events[-JSON_EVENTS:]],
        "events_total": len(faultline.events),
        "unreached": faultline.unreached(),
    }


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
        for e in events:
            lines.append(
                f"  {e['time'] * 1000:9.3f} ms  [{e['thread']}] {e['kind']} {e['name']}: "
                f"{e['detail']}"
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


class JsonReport:
    """Collects per-test records and writes ``--faultline-report``."""

    def __init__(self, path: Path, seed: int) -> None:
        self.path = path
        self.seed = seed
        self.tests: dict[str, dict[str, Any]] = {}

    def add(self, record: dict[str, Any], outcome: str) -> None:
        """Merge a phase's record; ``outcome`` is that phase's (passed, failed, error, ...)."""
        entry = self.tests.setdefault(record["nodeid"], dict(record, outcome="passed"))
        entry.update({k: v for k, v in record.items() if k != "nodeid"})
        if outcome != "passed" and entry["outcome"] not in ("failed", "error"):
            entry["outcome"] = outcome

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": REPORT_VERSION, "seed": self.seed, "tests": list(self.tests.values())}
        self.path.write_text(json.dumps(data, indent=2, default=repr) + "\n", encoding="utf-8")


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
        if self.json_report is not None:
            self.json_report.add(record, outcome)

    def pytest_sessionfinish(self) -> None:
        self.tokens.save()
        if self.json_report is not None:
            self.json_report.write()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .settings import SETTINGS_KEY

        replay = self.config.stash[SETTINGS_KEY].replay
        if replay is not None and not any(
            self.tokens_match(nodeid, replay.test) for nodeid in self.replay_matched
        ):
            terminalreporter.write_sep("-", "faultline", yellow=True)
            terminalreporter.write_line(
                f"the replay token {replay.encode()} matched no test that ran: it was recorded "
                f"for a test whose id hashes to {replay.test}; select that test (the failure "
                f"report prints the exact command)"
            )
        if self.json_report is not None:
            terminalreporter.write_line(
                f"faultline: JSON report written to {self.json_report.path}"
            )

    @staticmethod
    def tokens_match(nodeid: str, fingerprint: str) -> bool:
        from .decider import test_fingerprint

        return test_fingerprint(nodeid) == fingerprint
