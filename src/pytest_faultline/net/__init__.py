"""Network faults: the embedded fault proxy, socket-level faults and the Toxiproxy backend.

The controller reaches this package through the two functions below; the machinery lives in
``proxies`` (proxies, toxics, backends) and ``sockets`` (socket-level faults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..controller import Faultline


def make_proxy(faultline: Faultline, upstream: tuple[str, int] | str, *, name: str | None) -> Any:
    from .proxies import make_proxy as make

    return make(faultline, upstream, name=name)


def socket_faults(faultline: Faultline) -> Any:
    from .sockets import SocketFaults

    return SocketFaults(faultline)
