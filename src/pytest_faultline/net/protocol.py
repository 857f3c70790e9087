"""What every proxy backend offers (the errors proxies raise live in :mod:`pytest_faultline.errors`
and are importable from here too).

The embedded proxy (:mod:`.proxy`) and the Toxiproxy backend (:mod:`.toxiproxy`) both satisfy
:class:`Proxy` and :class:`Toxic`, so a test written against one runs against the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from ..errors import (
    ProxyConflict,
    ProxyError,
    ProxyNotFound,
    ProxyServerError,
    ToxicBadRequest,
    ToxiproxyUnreachable,
    UnsupportedFault,
)
from .address import ADDRESS_HELP, format_address, split_address

__all__ = [
    "Chooser",
    "Proxy",
    "ProxyConflict",
    "ProxyError",
    "ProxyNotFound",
    "ProxyServerError",
    "Toxic",
    "ToxicBadRequest",
    "ToxiproxyUnreachable",
    "UnsupportedFault",
    "format_address",
    "parse_address",
]


class Chooser(Protocol):
    """A source of choices; the decider's streams satisfy it, so do seeded wrappers of
    ``random.Random`` for the controller-free proxy."""

    def chance(self, probability: float) -> bool: ...

    def uniform(self, low: float, high: float) -> float: ...

    def choice(self, n: int) -> int: ...


@runtime_checkable
class Toxic(Protocol):
    """One toxic on one proxy: ``name``, ``type``, ``stream``, ``toxicity``, ``attributes``."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str:
        """Toxiproxy's toxic type (``latency``, ...), or ``reply_lost`` / ``refuse``."""

    @property
    def stream(self) -> str:
        """``"upstream"`` (client to server) or ``"downstream"`` (server to client)."""

    @property
    def toxicity(self) -> float:
        """The chance that a connection is affected (rolled per connection)."""

    @property
    def attributes(self) -> dict[str, int]: ...

    def update(self, *, toxicity: float | None = None, **attributes: int) -> None:
        """Change attributes (merged into the current ones) on live connections too."""

    def remove(self) -> None:
        """Take the toxic off the proxy, live connections included."""


@runtime_checkable
class Proxy(Protocol):
    """A TCP proxy in front of ``upstream`` that clients reach at ``listen``."""

    name: str

    @property
    def listen(self) -> tuple[str, int]: ...

    @property
    def upstream(self) -> tuple[str, int]: ...

    @property
    def enabled(self) -> bool: ...

    def add_toxic(
        self,
        type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> Toxic: ...

    def toxics(self) -> Sequence[Toxic]: ...

    def disable(self) -> None: ...

    def enable(self) -> None: ...

    def down(self) -> AbstractContextManager[None]: ...

    def reset_connections(self) -> None: ...

    def close(self) -> None: ...


def parse_address(value: object, what: str = "upstream") -> tuple[str, int]:
    """``(host, port)`` from a tuple or a ``"host:port"`` string (an empty host is
    ``127.0.0.1``); :class:`ToxicBadRequest` saying what was wrong otherwise."""
    try:
        return split_address(value, default_host="127.0.0.1")
    except ValueError as exc:
        raise ToxicBadRequest(
            f"{what} {value!r} is not an address: {exc}; {ADDRESS_HELP}"
        ) from None
