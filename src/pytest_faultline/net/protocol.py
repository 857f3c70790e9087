"""What every proxy backend offers, and the errors proxies raise.

The embedded proxy (:mod:`.proxy`) and the Toxiproxy backend (:mod:`.toxiproxy`) both satisfy
:class:`Proxy` and :class:`Toxic`, so a test written against one runs against the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from ..errors import FaultlineError

__all__ = [
    "Chooser",
    "Proxy",
    "ProxyConflict",
    "ProxyError",
    "ProxyNotFound",
    "ProxyServerError",
    "Toxic",
    "ToxicBadRequest",
    "parse_address",
]


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


class Chooser(Protocol):
    """A source of choices; the decider's streams satisfy it, so do seeded wrappers of
    ``random.Random`` for the controller-free proxy."""

    def chance(self, probability: float) -> bool: ...

    def uniform(self, low: float, high: float) -> float: ...

    def choice(self, n: int) -> int: ...


@runtime_checkable
class Toxic(Protocol):
    """One toxic on one proxy: ``name``, ``type``, ``stream``, ``toxicity``, ``attributes``."""

    name: str
    type: str
    stream: str
    toxicity: float

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
    """``(host, port)`` from a tuple or a ``"host:port"`` string; a clear error otherwise."""
    host: Any
    port: Any
    if isinstance(value, str):
        host, sep, port_text = value.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ToxicBadRequest(
                f"{what} {value!r} is not an address: write 'host:port' or (host, port), "
                f"for example '127.0.0.1:6379'"
            )
        host, port = host.strip("[]") or "127.0.0.1", int(port_text)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        host, port = value
    else:
        raise ToxicBadRequest(
            f"{what} {value!r} is not an address: write 'host:port' or (host, port), "
            f"for example ('127.0.0.1', 6379)"
        )
    if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ToxicBadRequest(
            f"{what} {value!r} is not an address: the host must be a string and the port a "
            f"whole number from 0 to 65535; write 'host:port' or (host, port)"
        )
    return host, port


def format_address(address: tuple[str, int]) -> str:
    """``"host:port"`` (IPv6 hosts in brackets), as Toxiproxy writes addresses."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
