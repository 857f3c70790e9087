"""pytest-faultline: reusable fault-injection fixtures for pytest.

``from pytest_faultline import point`` is import-light (it does not import pytest) so production
code can carry fault points. Everything else is loaded on first use.
"""

from __future__ import annotations

from ._points import point
from .errors import (
    DeadlockError,
    FaultlineError,
    FaultlineWarning,
    InjectedFault,
    LockOrderError,
    ProxyConflict,
    ProxyError,
    ProxyNotFound,
    ProxyServerError,
    ReplayTokenError,
    ScenarioError,
    TargetError,
    ThreadAffinityError,
    ToxicBadRequest,
    ToxiproxyUnreachable,
    UnreachedPointWarning,
    UnsupportedFault,
)

# Not ``typing.TYPE_CHECKING``: importing typing costs milliseconds that ``point`` must not cost
# (the type checkers treat any constant named TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from . import actions
    from ._context import EventKind, FaultEvent
    from .arming import Arming
    from .cleanup import Clock, Deferral, HeldCall
    from .controller import Faultline
    from .decider import ReplayToken
    from .exploring import ExploreOptions
    from .lockorder import LockOrder
    from .net import Proxy, SocketFault, SocketFaults, Toxic
    from .registry import REGISTRY, scenario
    from .sched import Exploration
    from .sweep import Sweep

__version__ = "0.1.0.dev0"

__all__ = [
    "REGISTRY",
    "Arming",
    "Clock",
    "DeadlockError",
    "Deferral",
    "EventKind",
    "Exploration",
    "ExploreOptions",
    "FaultEvent",
    "Faultline",
    "FaultlineError",
    "FaultlineWarning",
    "HeldCall",
    "InjectedFault",
    "LockOrder",
    "LockOrderError",
    "Proxy",
    "ProxyConflict",
    "ProxyError",
    "ProxyNotFound",
    "ProxyServerError",
    "ReplayToken",
    "ReplayTokenError",
    "ScenarioError",
    "SocketFault",
    "SocketFaults",
    "Sweep",
    "TargetError",
    "ThreadAffinityError",
    "Toxic",
    "ToxicBadRequest",
    "ToxiproxyUnreachable",
    "UnreachedPointWarning",
    "UnsupportedFault",
    "actions",
    "point",
    "scenario",
]

# Loaded on first use: the registry (inspect, dataclasses) and everything else would make
# ``from pytest_faultline import point`` cost ~15 ms instead of ~1.
_LAZY = {
    "REGISTRY": ("pytest_faultline.registry", "REGISTRY"),
    "scenario": ("pytest_faultline.registry", "scenario"),
    "actions": ("pytest_faultline.actions", None),
    "Arming": ("pytest_faultline.arming", "Arming"),
    "FaultEvent": ("pytest_faultline._context", "FaultEvent"),
    "Faultline": ("pytest_faultline.controller", "Faultline"),
    "EventKind": ("pytest_faultline._context", "EventKind"),
    "Clock": ("pytest_faultline.cleanup", "Clock"),
    "Deferral": ("pytest_faultline.cleanup", "Deferral"),
    "HeldCall": ("pytest_faultline.cleanup", "HeldCall"),
    "ExploreOptions": ("pytest_faultline.exploring", "ExploreOptions"),
    "Exploration": ("pytest_faultline.sched", "Exploration"),
    "LockOrder": ("pytest_faultline.lockorder", "LockOrder"),
    "Proxy": ("pytest_faultline.net.protocol", "Proxy"),
    "Toxic": ("pytest_faultline.net.protocol", "Toxic"),
    "SocketFault": ("pytest_faultline.net.sockets", "SocketFault"),
    "SocketFaults": ("pytest_faultline.net.sockets", "SocketFaults"),
    "ReplayToken": ("pytest_faultline.decider", "ReplayToken"),
    "Sweep": ("pytest_faultline.sweep.api", "Sweep"),
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
