"""Fault-space sweep: record the fault sites a test body reaches, then re-run it with one fault
per site and kind (and pairs, within a budget), each run from the seed with its own token.

Importing this package is cheap; the machinery loads when a sweep runs. Like every subsystem it
uses the fault session through :mod:`pytest_faultline._context`, never the controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._context import ServiceKey

if TYPE_CHECKING:
    from .api import Sweep, SweepOptions
    from .kinds import FaultKind
    from .sites import Site

__all__ = ["SWEEPS", "FaultKind", "Site", "Sweep", "SweepOptions"]

SWEEPS: ServiceKey[list[dict[str, Any]]] = ServiceKey("sweep.results")
"""The JSON-ready result of every sweep a test ran (read by the report)."""


def __getattr__(name: str) -> object:
    if name in ("Sweep", "SweepOptions"):
        from . import api

        return getattr(api, name)
    if name == "FaultKind":
        from . import kinds

        return kinds.FaultKind
    if name == "Site":
        from . import sites

        return sites.Site
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
