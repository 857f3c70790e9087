"""``--faultline-sweep=KINDS``: sweep every test that opts in (``@pytest.mark.faultline_sweep``),
or every collected test with ``--faultline-sweep-all``, after printing what it will cost (under
xdist the controller prints it for the workers); and the live progress line a long sweep writes
to the terminal by itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "SWEEP_MARKER",
    "LiveProgress",
    "estimate",
    "estimate_distributed",
    "live_progress",
    "mark_swept",
    "start_live_progress",
    "stop_live_progress",
]

SWEEP_MARKER = "faultline_sweep"
SCENARIO = "fault_sweep"


def _has_own_sweep(item: pytest.Item) -> bool:
    return any(mark.args[:1] == (SCENARIO,) for mark in item.iter_markers("faultline") if mark.args)


def mark_swept(config: pytest.Config, items: list[pytest.Item], settings: Settings) -> None:
    """Add the ``fault_sweep`` scenario with the option's kinds to each swept item (an item's
    own ``fault_sweep`` marker wins: marker > CLI), then print the cost estimate."""
    swept = 0
    for item in items:
        opted = item.get_closest_marker(SWEEP_MARKER)
        if (opted is None and not settings.sweep_all) or _has_own_sweep(item):
            continue
        params = dict(opted.kwargs) if opted is not None else {}
        params["kinds"] = list(settings.sweep)
        item.add_marker(pytest.mark.faultline(SCENARIO, **params))
        swept += 1
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not hasattr(config, "workerinput"):  # xdist: the controller's
        reporter.write_line(estimate(swept, len(items), settings))


def estimate(swept: int, collected: int, settings: Settings) -> str:
    """What sweeping ``swept`` tests costs, in runs of their bodies (and seconds, when bounded)."""
    kinds = ", ".join(settings.sweep)
    scope = "collected" if settings.sweep_all else "marked faultline_sweep"
    text = (
        f"faultline: sweeping {swept} of {collected} tests ({scope}) with {kinds}: each body "
        f"runs once to record its fault sites, then once per site and kind that applies there "
        f"(N sites x {len(settings.sweep)} kinds + 1 runs per test)"
    )
    if settings.budget is not None:
        text += (
            f"; --faultline-budget bounds each sweep to {settings.budget:g} s, the whole to "
            f"{swept * settings.budget:g} s"
        )
    else:
        text += "; bound it with --faultline-budget=SECONDS per test"
    return text


def estimate_distributed(collected: int, workers: int, settings: Settings) -> str:
    """The estimate the xdist controller prints when the first worker has collected: the
    controller sees the collected ids but not their markers, and each test's sweep runs whole on
    the worker that runs the test (tests spread over the workers, the runs of one sweep do not)."""
    kinds = ", ".join(settings.sweep)
    scope = (
        f"all {collected} collected tests"
        if settings.sweep_all
        else f"the tests marked faultline_sweep among {collected} collected"
    )
    text = (
        f"faultline: sweeping {scope} with {kinds} on {workers} xdist workers: each test's sweep "
        f"runs on one worker (N sites x {len(settings.sweep)} kinds + 1 runs of its body); the "
        f"tests spread over the workers, the runs of one sweep do not"
    )
    if settings.budget is not None:
        swept = collected if settings.sweep_all else None
        text += f"; --faultline-budget bounds each sweep to {settings.budget:g} s"
        if swept is not None:
            whole = swept * settings.budget
            text += f", the whole to {whole:g} s of worker time, about {whole / workers:g} s"
            text += " of wall time"
    else:
        text += "; bound it with --faultline-budget=SECONDS per test"
    return text


# -- live progress -------------------------------------------------------------------------------

LIVE_FIRST_S = 2.0  # a sweep shorter than this prints nothing (unless the terminal is verbose)
LIVE_EVERY_S = 1.0


class LiveProgress:
    """Writes a sweep's progress lines to the terminal while the test runs, past pytest's
    capture (as live logging does), never into the test's captured output."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        verbosity = config.get_verbosity()
        self.enabled = verbosity >= 0
        self.first_after = LIVE_EVERY_S if verbosity > 0 else LIVE_FIRST_S
        self.every = LIVE_EVERY_S

    def write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with self._uncaptured():
            reporter.ensure_newline()
            reporter.write_line(line)

    @contextlib.contextmanager
    def _uncaptured(self) -> Iterator[None]:
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if capman is None:
            yield
            return
        with capman.global_and_fixture_disabled():
            yield


_LIVE: list[LiveProgress] = []  # one per configured session (pytester nests them), innermost last


def start_live_progress(config: pytest.Config) -> None:
    """At configure, in the process that owns the terminal (not on an xdist worker)."""
    if not hasattr(config, "workerinput"):
        _LIVE.append(LiveProgress(config))


def stop_live_progress(config: pytest.Config) -> None:
    for live in reversed(_LIVE):
        if live.config is config:
            _LIVE.remove(live)
            return


def live_progress() -> LiveProgress | None:
    """The terminal a sweep running now writes its progress to, if any."""
    live = _LIVE[-1] if _LIVE else None
    return live if live is not None and live.enabled else None
