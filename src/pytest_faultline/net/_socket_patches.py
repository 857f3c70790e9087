"""The replacements :class:`~pytest_faultline.net.sockets.SocketFaults` installs on
``socket.socket`` for one test, and their undo.

Each replacement looks the socket up once; a socket no fault applies to goes straight to the
method it replaced (the original, or an outer test's replacement when controllers nest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket

    from .sockets import SocketFaults

__all__ = [
    "CONNECT_METHODS",
    "READ_METHODS",
    "WRITE_METHODS",
    "SocketObserver",
    "install",
    "set_observer",
]

READ_METHODS = ("recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg")
WRITE_METHODS = ("send", "sendall", "sendto", "sendmsg")
CONNECT_METHODS = ("connect", "connect_ex")

_MISSING = object()

# ``observer(method, sock, call, args, name_of)``: while set (the fault sweep sets it for its
# runs), every patched call goes through it, and it makes the call itself as ``call(sock,
# *args)``: it may record it, change its arguments, raise instead, or return another result.
# ``name_of(sock)`` is the connection's name ('connected-0', 'accepted-1') or None for a socket
# no fault applies to. Unset, the patches pay one global lookup.
SocketObserver = Callable[
    [
        str,
        "socket.socket",
        Callable[..., Any],
        tuple[Any, ...],
        Callable[["socket.socket"], "str | None"],
    ],
    Any,
]
_observer: SocketObserver | None = None


def set_observer(observer: SocketObserver | None) -> SocketObserver | None:
    """Install ``observer`` for every test's patched socket calls; return the previous one."""
    global _observer
    previous = _observer
    _observer = observer
    return previous


def install(faults: SocketFaults) -> None:
    """Replace ``socket.socket``'s I/O methods; push each undo on the test's undo stack."""
    import socket

    cls = socket.socket
    makers: dict[str, Callable[[SocketFaults, Any], Callable[..., Any]]] = {
        "recv": make_recv,
        "recv_into": make_recv_into,
        "recvfrom": make_recvfrom,
        "recvfrom_into": make_recvfrom_into,
        "recvmsg": make_recvmsg,
        "accept": make_accept,
    }
    for name in WRITE_METHODS:
        makers[name] = make_tracker
    for name in CONNECT_METHODS:
        makers[name] = make_connect
    for name, make in makers.items():
        saved = cls.__dict__.get(name, _MISSING)
        setattr(cls, name, _observed(faults, name, make(faults, getattr(cls, name))))
        faults.faultline.undo.push(_restorer(cls, name, saved), f"restore socket.socket.{name}")


def make_recv(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    lookup, read = faults._lookup, faults._read

    def recv(sock: socket.socket, bufsize: int, flags: int = 0) -> bytes:
        conn = lookup(sock)
        if not conn.active:
            return prev(sock, bufsize, flags)  # type: ignore[no-any-return]
        return read(  # type: ignore[no-any-return]
            sock, conn, bufsize, flags, lambda n: prev(sock, n, flags), len, lambda: b""
        )

    return recv


def make_recv_into(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    lookup, read = faults._lookup, faults._read

    def recv_into(sock: socket.socket, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        conn = lookup(sock)
        if not conn.active:
            return prev(sock, buffer, nbytes, flags)  # type: ignore[no-any-return]
        size = memoryview(buffer).nbytes
        if nbytes > size:  # the original says what is wrong with nbytes
            return prev(sock, buffer, nbytes, flags)  # type: ignore[no-any-return]
        requested = nbytes or size
        return read(  # type: ignore[no-any-return]
            sock,
            conn,
            requested,
            flags,
            lambda n: prev(sock, buffer, n, flags),
            int,
            lambda: 0,
        )

    return recv_into


def make_recvfrom(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    lookup, read = faults._lookup, faults._read

    def recvfrom(sock: socket.socket, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        conn = lookup(sock)
        if not conn.active:
            return prev(sock, bufsize, flags)  # type: ignore[no-any-return]
        return read(  # type: ignore[no-any-return]
            sock,
            conn,
            bufsize,
            flags,
            lambda n: prev(sock, n, flags),
            lambda r: len(r[0]),
            lambda: (b"", None),
        )

    return recvfrom


def make_recvfrom_into(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    lookup, read = faults._lookup, faults._read

    def recvfrom_into(
        sock: socket.socket, buffer: Any, nbytes: int = 0, flags: int = 0
    ) -> tuple[int, Any]:
        conn = lookup(sock)
        if not conn.active:
            return prev(sock, buffer, nbytes, flags)  # type: ignore[no-any-return]
        size = memoryview(buffer).nbytes
        if nbytes > size:  # the original says what is wrong with nbytes
            return prev(sock, buffer, nbytes, flags)  # type: ignore[no-any-return]
        requested = nbytes or size
        return read(  # type: ignore[no-any-return]
            sock,
            conn,
            requested,
            flags,
            lambda n: prev(sock, buffer, n, flags),
            lambda r: int(r[0]),
            lambda: (0, None),
        )

    return recvfrom_into


def make_recvmsg(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    lookup, read = faults._lookup, faults._read

    def recvmsg(
        sock: socket.socket, bufsize: int, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[bytes, list[Any], int, Any]:
        conn = lookup(sock)
        if not conn.active:
            return prev(sock, bufsize, ancbufsize, flags)  # type: ignore[no-any-return]
        return read(  # type: ignore[no-any-return]
            sock,
            conn,
            bufsize,
            flags,
            lambda n: prev(sock, n, ancbufsize, flags),
            lambda r: len(r[0]),
            lambda: (b"", [], 0, None),
        )

    return recvmsg


def make_tracker(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    # Writes are not faulted; seeing them tells disconnect_all which connections exist.
    conns, register = faults._conns, faults._register

    def tracked(sock: socket.socket, *args: Any) -> Any:
        if sock not in conns:
            register(sock, "socket")
        return prev(sock, *args)

    tracked.__name__ = tracked.__qualname__ = getattr(prev, "__name__", "tracked")
    return tracked


def make_connect(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    register = faults._register

    def connect(sock: socket.socket, address: Any) -> Any:
        register(sock, "connected")  # before the call: asyncio's connect raises EINPROGRESS
        return prev(sock, address)

    connect.__name__ = connect.__qualname__ = getattr(prev, "__name__", "connect")
    return connect


def make_accept(faults: SocketFaults, prev: Callable[..., Any]) -> Callable[..., Any]:
    register = faults._register

    def accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        new, address = prev(sock)
        register(new, "accepted")
        return new, address

    return accept


def _observed(faults: SocketFaults, method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    role = "connected" if method in CONNECT_METHODS else None
    register, lookup = faults._register, faults._lookup

    def name_of(sock: socket.socket) -> str | None:
        conn = lookup(sock)
        return conn.label if conn.eligible else None

    def observed(sock: socket.socket, *args: Any) -> Any:
        observer = _observer
        if observer is None:
            return fn(sock, *args)
        if role is not None:
            register(sock, role)  # named before the call, as the connect itself does
        return observer(method, sock, fn, args, name_of)

    observed.__name__ = observed.__qualname__ = getattr(fn, "__name__", method)
    return observed


def _restorer(cls: type, name: str, saved: object) -> Callable[[], None]:
    def restore() -> None:
        if saved is _MISSING:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, saved)

    return restore
