"""Built-in network scenarios: socket-level faults and a disconnect at the worst moment."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("disconnect_mid_recycle")
def disconnect_mid_recycle(
    faultline: Faultline, at: str | Callable[..., Any], times: int = 1
) -> None:
    """When `at` (a point or 'pkg.mod:qualname') is reached, drop every connection of the test's
    proxies and patched sockets, then go on.

    Each dropped connection's peer sees EOF; the code at `at` continues, so what it does next
    runs against dead connections, as after a client vanishing mid-recycle. `times` bounds how
    often it fires (the first `times` arrivals).
    """
    faultline.sockets  # noqa: B018  - installs the socket layer so its connections can be dropped
    from ..actions import Disconnect

    faultline.arm(at, Disconnect(), times=times)


@scenario("partial_read")
def partial_read(faultline: Faultline, max_bytes: int = 1, peer: str | None = None) -> None:
    """Every socket read returns at most `max_bytes` (split points drawn from the seed).

    Code that assumes one ``recv`` returns a whole message gets part of it; code that loops
    until it has the bytes it needs is unaffected. `peer` ('host:port') limits the fault to
    connections to that address.
    """
    faultline.sockets.short_reads(max_bytes, peer=peer)


@scenario("timeout_mid_message")
def timeout_mid_message(faultline: Faultline, after_bytes: int, peer: str | None = None) -> None:
    """The incoming stream stalls after `after_bytes`; reads then time out as the socket says.

    A socket with a timeout raises ``TimeoutError`` after it; one without a timeout is ended by
    faultline's stall bound (10 s) with a ``TimeoutError`` that says so.
    """
    faultline.sockets.stall_after(after_bytes, peer=peer)


@scenario("truncated_message")
def truncated_message(faultline: Faultline, after_bytes: int, peer: str | None = None) -> None:
    """The peer closes the connection after `after_bytes`: reads return EOF mid-message."""
    faultline.sockets.close_after(after_bytes, peer=peer)
