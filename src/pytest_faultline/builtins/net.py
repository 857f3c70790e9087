"""Built-in network scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..actions import Disconnect
from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("disconnect_mid_recycle")
def disconnect_mid_recycle(faultline: Faultline, at: str, times: int = 1) -> None:
    """When `at` (a point or 'pkg.mod:qualname') is reached, drop every connection of the test's
    proxies and patched sockets, then go on."""
    faultline.sockets  # noqa: B018  - installs the socket layer so its connections can be dropped
    faultline.arm(at, Disconnect(), times=times)


@scenario("partial_read")
def partial_read(faultline: Faultline, max_bytes: int = 1, peer: str | None = None) -> None:
    """Every socket read returns at most `max_bytes` (split points drawn from the seed)."""
    faultline.sockets.short_reads(max_bytes, peer=peer)


@scenario("timeout_mid_message")
def timeout_mid_message(faultline: Faultline, after_bytes: int, peer: str | None = None) -> None:
    """The incoming stream stalls after `after_bytes`; reads then time out as the socket says."""
    faultline.sockets.stall_after(after_bytes, peer=peer)


@scenario("truncated_message")
def truncated_message(faultline: Faultline, after_bytes: int, peer: str | None = None) -> None:
    """The peer closes the connection after `after_bytes`."""
    faultline.sockets.close_after(after_bytes, peer=peer)
