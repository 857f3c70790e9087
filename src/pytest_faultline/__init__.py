"""pytest-faultline: reusable fault-injection fixtures for pytest.

``from pytest_faultline import point`` is import-light (it does not import pytest) so production
code can carry fault points. Everything else is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._points import point
from .errors import (
    DeadlockError,
    FaultlineError,
    FaultlineWarning,
    InjectedFault,
    LockOrderError,
    ReplayTokenError,
    ScenarioError,
    TargetError,
    ThreadAffinityError,
    UnreachedPointWarning,
)
from .registry import REGISTRY, scenario

if TYPE_CHECKING:
    from . import actions
    from .controller import Arming, FaultEvent, Faultline
    from .decider import ReplayToken

__version__ = "0.1.0.dev0"

__all__ = [
    "REGISTRY",
    "Arming",
    "DeadlockError",
    "FaultEvent",
    "Faultline",
    "FaultlineError",
    "FaultlineWarning",
    "InjectedFault",
    "LockOrderError",
    "ReplayToken",
    "ReplayTokenError",
    "ScenarioError",
    "TargetError",
    "ThreadAffinityError",
    "UnreachedPointWarning",
    "actions",
    "point",
    "scenario",
]

_LAZY = {
    "actions": ("pytest_faultline.actions", None),
    "Arming": ("pytest_faultline.arming", "Arming"),
    "FaultEvent": ("pytest_faultline._context", "FaultEvent"),
    "Faultline": ("pytest_faultline.controller", "Faultline"),
    "ReplayToken": ("pytest_faultline.decider", "ReplayToken"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_faultline' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
