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
    "CLOSE_METHODS",
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
# Patched only while an observer is set: no socket fault acts there, the sweep's sites do.
CLOSE_METHODS = ("close", "shutdown")

_MISSING = object()

# ``observer(method, sock, call, args, name_of)``: while set (the fault sweep sets it for its
# runs), every patched call goes through it, and it makes the call itself as ``call(sock,
# *args)``: it may record it, change its arguments, raise instead, or return another result.
# ``name_of(sock)`` is the connection's name ('connected-0', 'accepted-1') or None for a socket
# no fault applies to. Unset, the class holds the fault layer's own methods: an observer costs
# nothing while no sweep runs.
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


class _Layer:
    """One test's replacements on ``socket.socket``: per method what the class holds while no
    observer is set (``plain``: the fault layer's method, or for a close method what was there,
    ``_MISSING`` when that was inherited) and while one is (``observed``)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.plain: dict[str, object] = {}
        self.observed: dict[str, Callable[..., Any]] = {}
        self.saved: dict[str, object] = {}  # what the class held unobserved before this layer

    def owns(self, name: str) -> bool:
        held = self.cls.__dict__.get(name, _MISSING)
        return held is self.observed[name] or held is self.plain[name]

    def show(self, *, observed: bool) -> None:
        """Put the observed or the plain methods on the class (where this layer's are there)."""
        for name, wrapper in self.observed.items():
            held = self.cls.__dict__.get(name, _MISSING)
            if observed and held is self.plain[name]:
                setattr(self.cls, name, wrapper)
            elif not observed and held is wrapper:
                _put(self.cls, name, self.plain[name])


_layers: list[_Layer] = []  # the tests' layers now installed, innermost last


def set_observer(observer: SocketObserver | None) -> SocketObserver | None:
    """Install ``observer`` for every test's patched socket calls; return the previous one.

    The innermost layer's observed methods go on the class while an observer is set, its plain
    ones when it is unset, so the patched calls pay for the observer only during a sweep."""
    global _observer
    previous = _observer
    _observer = observer
    if _layers and (previous is None) != (observer is None):
        _layers[-1].show(observed=observer is not None)
    return previous


def _put(cls: type, name: str, value: object) -> None:
    if value is _MISSING:
        if name in cls.__dict__:
            delattr(cls, name)
    else:
        setattr(cls, name, value)


def _inherited(cls: type, name: str) -> Any:
    for base in cls.__mro__[1:]:
        if name in base.__dict__:
            return base.__dict__[name]
    raise AttributeError(name)


def install(faults: SocketFaults) -> None:
    """Replace ``socket.socket``'s I/O methods; push the undo on the test's undo stack."""
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
    outer = _layers[-1] if _layers and any(_layers[-1].owns(n) for n in makers) else None
    layer = _Layer(cls)
    for name in (*makers, *CLOSE_METHODS):
        # What the class holds unobserved now: the outer layer's plain method, not its observed
        # one (calls are observed once, at the innermost layer).
        saved = outer.plain[name] if outer is not None else cls.__dict__.get(name, _MISSING)
        below: Callable[..., Any] = saved if callable(saved) else _inherited(cls, name)
        make = makers.get(name)
        plain = below if make is None else make(faults, below)
        layer.saved[name] = saved
        layer.plain[name] = saved if make is None else plain
        layer.observed[name] = _observed(faults, name, plain)
    _layers.append(layer)
    for name in layer.plain:
        _put(cls, name, layer.observed[name] if _observer is not None else layer.plain[name])
    faults.faultline.undo.push(lambda: _uninstall(layer), "restore socket.socket's methods")


def _uninstall(layer: _Layer) -> None:
    innermost = bool(_layers) and _layers[-1] is layer
    if layer in _layers:
        _layers.remove(layer)
    if not innermost:
        return  # an inner layer's methods are on the class; they call this one's (rare)
    outer = _layers[-1] if _layers else None
    for name, saved in layer.saved.items():
        held = layer.cls.__dict__.get(name, _MISSING)
        if held is not layer.observed[name] and held is not layer.plain[name]:
            continue  # someone patched over it: theirs stays
        if outer is not None and _observer is not None:
            _put(layer.cls, name, outer.observed[name])
        else:
            _put(layer.cls, name, saved)


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
    register, lookup, conns = faults._register, faults._lookup, faults._conns

    def name_of(sock: socket.socket) -> str | None:
        conn = lookup(sock)
        return conn.label if conn.eligible else None

    def known(sock: socket.socket) -> str | None:
        # A close names only a socket faultline has seen, and registers none (a listener, a
        # socket never used, is no connection).
        conn = conns.get(sock)
        return conn.label if conn is not None and conn.eligible else None

    naming = known if method in CLOSE_METHODS else name_of

    def observed(sock: socket.socket, *args: Any) -> Any:
        observer = _observer
        if observer is None:  # unset while this call was on its way in
            return fn(sock, *args)
        if role is not None:
            register(sock, role)  # named before the call, as the connect itself does
        return observer(method, sock, fn, args, naming)

    observed.__name__ = observed.__qualname__ = getattr(fn, "__name__", method)
    return observed
