"""The one reader of network addresses: ``"host:port"``, ``"[v6]:port"`` and ``(host, port)``.

Proxies (upstream, listen), socket-fault peers and the Toxiproxy API all read addresses through
:func:`split_address`; each caller words its own error around the reason it raises.
"""

from __future__ import annotations

__all__ = ["ADDRESS_HELP", "format_address", "split_address"]

ADDRESS_HELP = (
    "write 'host:port' (for example '127.0.0.1:6379' or '[::1]:6379') or (host, port), such as "
    "server.getsockname()"
)


def split_address(
    value: object, *, default_host: str | None = None, min_port: int = 0
) -> tuple[str, int]:
    """``(host, port)`` from ``"host:port"``, ``"[v6]:port"``, a ``(host, port)`` pair (a list
    too, as JSON gives) or an IPv6 ``getsockname()`` 4-tuple.

    ``default_host`` stands for an empty host (``":8474"``); without it an empty host is an
    error. Raises :class:`ValueError` whose text says what is wrong (callers add how to fix it).
    """
    host: object
    port: object
    if isinstance(value, str):
        host, sep, port_text = value.strip().rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError("it has no ':port' at the end")
        host, port = host.strip("[]"), int(port_text)
    elif isinstance(value, (tuple, list)) and len(value) in (2, 4):
        if len(value) == 4 and not isinstance(value, tuple):
            raise ValueError("it is neither 'host:port' nor a (host, port) pair")
        host, port = value[0], value[1]
    else:
        raise ValueError("it is neither 'host:port' nor a (host, port) pair")
    if not isinstance(host, str):
        raise ValueError(f"the host {host!r} is not a string")
    if not host:
        if default_host is None:
            raise ValueError("the host is empty")
        host = default_host
    if isinstance(port, bool) or not isinstance(port, int) or not min_port <= port <= 65535:
        raise ValueError(f"the port {port!r} is not a whole number from {min_port} to 65535")
    return host, port


def format_address(address: tuple[str, int]) -> str:
    """``"host:port"`` (IPv6 hosts in brackets), as Toxiproxy writes addresses."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
