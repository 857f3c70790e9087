"""Network faults: the embedded fault proxy, socket-level faults and the Toxiproxy backend.

The controller reaches this package through the two functions below; the machinery lives in
``proxies`` (proxies, toxics, backends) and ``sockets`` (socket-level faults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._context import ServiceKey

if TYPE_CHECKING:
    from .._context import FaultContext
    from .protocol import Proxy, Toxic
    from .sockets import SocketFault, SocketFaults

__all__ = [
    "SOCKETS",
    "Proxy",
    "SocketFault",
    "SocketFaults",
    "Toxic",
    "make_proxy",
    "socket_faults",
]

SOCKETS: ServiceKey[SocketFaults] = ServiceKey("sockets")


def make_proxy(
    faultline: FaultContext, upstream: tuple[str, int] | str, *, name: str | None
) -> Proxy:
    from .proxies import make_proxy as make

    return make(faultline, upstream, name=name)


def socket_faults(faultline: FaultContext) -> SocketFaults:
    from .sockets import SocketFaults

    return SocketFaults(faultline)


def __getattr__(name: str) -> object:
    # The types are exported lazily: importing this package must not load the proxy.
    if name in ("Proxy", "Toxic"):
        from . import protocol

        return getattr(protocol, name)
    if name in ("SocketFault", "SocketFaults"):
        from . import sockets

        return getattr(sockets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
