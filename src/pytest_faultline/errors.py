"""The exceptions and warnings pytest-faultline raises.

Every class reports ``pytest_faultline`` as its module so tracebacks and docs show the public
name, not the internal module.
"""

from __future__ import annotations

__all__ = [
    "DeadlockError",
    "FaultlineError",
    "FaultlineWarning",
    "InjectedFault",
    "LockOrderError",
    "ProxyConflict",
    "ProxyError",
    "ProxyNotFound",
    "ProxyServerError",
    "ReplayTokenError",
    "ScenarioError",
    "TargetError",
    "ThreadAffinityError",
    "ToxicBadRequest",
    "ToxiproxyUnreachable",
    "UnreachedPointWarning",
    "UnsupportedFault",
]


class FaultlineError(Exception):
    """Base of every error pytest-faultline raises about its own use."""


class ScenarioError(FaultlineError):
    """An unknown scenario, or a parameter it does not accept."""


class TargetError(FaultlineError):
    """A target path that does not resolve, or cannot be wrapped."""


class ReplayTokenError(FaultlineError):
    """A replay token that is malformed, truncated or of an unknown version."""


class InjectedFault(Exception):
    """Raised by ``Raise`` when it was given no exception of the user's own.

    Deliberately not a ``FaultlineError``: it stands for a failure of the system under test.
    """


class DeadlockError(FaultlineError):
    """Every managed thread is blocked: the wait-for cycle is in the message."""


class LockOrderError(FaultlineError):
    """Two or more locks were taken in orders that form a cycle."""


class ThreadAffinityError(FaultlineError):
    """An object confined to one thread was used from another."""


class ProxyError(FaultlineError):
    """A proxy or toxic operation failed; ``status`` is the matching Toxiproxy HTTP status."""

    status = 500


class ToxicBadRequest(ProxyError):
    """Bad input: an unknown toxic type or stream, a bad attribute, a malformed address."""

    status = 400


class ProxyNotFound(ProxyError):
    """No proxy or toxic of that name."""

    status = 404


class ProxyConflict(ProxyError):
    """A proxy or toxic of that name exists already."""

    status = 409


class ProxyServerError(ProxyError):
    """The proxy could not do it (a port in use, an unreachable Toxiproxy server, ...)."""

    status = 500


class ToxiproxyUnreachable(ProxyServerError):
    """No Toxiproxy server answers at the URL (nothing listens, or the host is unknown)."""


class UnsupportedFault(ToxicBadRequest):
    """A fault the chosen proxy backend cannot perform (a deterministic cut asked of a
    Toxiproxy server, which has no such toxic): the message names the embedded backend."""


class FaultlineWarning(UserWarning):
    """Base of pytest-faultline's warnings."""


class UnreachedPointWarning(FaultlineWarning):
    """A target was armed but never reached during the test (often a typo)."""


for _cls in (
    FaultlineError,
    ScenarioError,
    TargetError,
    ReplayTokenError,
    InjectedFault,
    DeadlockError,
    LockOrderError,
    ThreadAffinityError,
    ProxyError,
    ToxicBadRequest,
    ProxyNotFound,
    ProxyConflict,
    ProxyServerError,
    ToxiproxyUnreachable,
    UnsupportedFault,
    FaultlineWarning,
    UnreachedPointWarning,
):
    _cls.__module__ = "pytest_faultline"
del _cls
