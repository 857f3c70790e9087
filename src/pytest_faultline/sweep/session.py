"""``--faultline-sweep=KINDS``: sweep every test that opts in (``@pytest.mark.faultline_sweep``),
or every collected test with ``--faultline-sweep-all``, after printing what it will cost."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["SWEEP_MARKER", "estimate", "mark_swept"]

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
    if reporter is not None:
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
