"""Network faults: the embedded fault proxy, socket-level faults and the Toxiproxy backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._pending import pending

if TYPE_CHECKING:
    from ..controller import Faultline


def make_proxy(faultline: Faultline, upstream: tuple[str, int] | str, *, name: str | None) -> Any:
    pending("faultline.proxy()", "the network fault machinery (embedded proxy)")


def socket_faults(faultline: Faultline) -> Any:
    pending("faultline.sockets", "the network fault machinery (socket-level faults)")
