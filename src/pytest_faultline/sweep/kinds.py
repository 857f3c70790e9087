"""The kinds of fault a sweep injects, and where each makes sense.

A kind says which sites it applies to (``applies``) and what it does there: ``at_call`` at a
fault point or a wrapped call (raise, or drop the connections and go on), ``at_socket`` at a
socket operation (it makes the call itself, changed, or raises instead), ``at_proxy`` at a
proxied connection or chunk (the proxy toxic that does it, as a :class:`ProxyCut`), ``switch``
at a scheduling point of a thread (which thread runs next). A kind with ``scheduled = True`` makes
the sweep run every run of the body under the thread scheduler, without preemptions of its own,
so that the scheduling points a run reaches are sites too. New kinds (asyncio cancellation)
are added to :data:`KINDS` the same way: a subclass of :class:`FaultKind` and its name.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind
from ..errors import FaultlineError, InjectedFault
from .sites import CALL, POINT, PROXY, SOCKET, THREAD, Site

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["DEFAULT_KINDS", "KINDS", "FaultKind", "ProxyCut", "SocketCall", "parse_kinds"]

READS = ("recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg")
EOF_RESULTS: dict[str, Any] = {
    "recv": b"",
    "recv_into": 0,
    "recvfrom": (b"", None),
    "recvfrom_into": (0, None),
    "recvmsg": (b"", [], 0, None),
}


class SocketCall:
    """One intercepted socket operation, as a kind sees it."""

    def __init__(
        self, method: str, sock: socket.socket, call: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self.method = method
        self.sock = sock
        self.call = call
        self.args = args

    def proceed(self, args: tuple[Any, ...] | None = None) -> Any:
        return self.call(self.sock, *(self.args if args is None else args))

    def end(self) -> None:
        """Shut the connection down both ways, so the peer's code sees it end too."""
        with contextlib.suppress(OSError):
            _socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def eof(self) -> Any:
        return EOF_RESULTS[self.method]


@dataclass(frozen=True)
class ProxyCut:
    """What a kind does at a proxy site: one of the embedded proxy's own toxics (``type`` and
    ``attributes`` as :meth:`~pytest_faultline.net.proxy.EmbeddedProxy.add_toxic` takes them)
    put on one ``stream`` of that connection alone, from the site on."""

    type: str
    stream: str
    attributes: dict[str, int]


def _stream(site: Site) -> str:
    return "downstream" if site.op == "down" else "upstream"  # an accept: the client's side


STALL_MS = int(_raw.STALL_BOUND_S * 1000)
ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


class FaultKind:
    """One kind of fault. ``name`` is what ``kinds=`` calls it and the report's column."""

    name = "fault"
    event = EventKind.ACTION
    # After this fault, later reads on the connection: "stall" time out, "eof" return EOF.
    ends_stream: str | None = None
    # True: the body runs under the thread scheduler, and ``switch`` acts at thread sites.
    scheduled = False

    def applies(self, site: Site) -> bool:
        return False

    def at_call(self, context: FaultContext, site: Site) -> None:
        raise NotImplementedError

    def at_socket(self, context: FaultContext, site: Site, op: SocketCall) -> Any:
        raise NotImplementedError

    def at_proxy(self, site: Site, skip: int) -> ProxyCut:
        """The toxic that injects this kind at proxy site ``site``; ``skip`` is how many bytes
        of the chunk now crossing come before the site's offset."""
        raise NotImplementedError

    def switch(self, others: int, draw: Callable[[int], int]) -> tuple[int, bool]:
        """At a thread site where ``others`` other threads could run: which one runs now (an
        index among them, drawn with ``draw(n)`` from the run's seed), and whether the
        preempted thread takes the baton back at the next scheduling point it can."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<fault kind {self.name}>"


class RaiseKind(FaultKind):
    """Raise an exception (``InjectedFault`` unless another type is given) at a point or call."""

    event = EventKind.RAISE

    def __init__(self, exc: type[BaseException] = InjectedFault) -> None:
        self.exc = exc
        self.name = "raise" if exc is InjectedFault else f"raise:{exc.__name__}"

    def applies(self, site: Site) -> bool:
        return site.where in (POINT, CALL)

    def at_call(self, context: FaultContext, site: Site) -> None:
        __tracebackhide__ = True
        raise self.exc(f"fault injected by the sweep at {site.describe()}")


class DisconnectKind(FaultKind):
    """Drop every connection of the test (both ends) at a point or call, then go on."""

    name = "disconnect"
    event = EventKind.DISCONNECT

    def applies(self, site: Site) -> bool:
        return site.where in (POINT, CALL)

    def at_call(self, context: FaultContext, site: Site) -> None:
        context.run_handlers("disconnect", None)


class StallKind(FaultKind):
    """The stream stalls at this read: it and every later read on the connection time out (at
    once: the sweep does not wait out the timeout). A connect times out."""

    name = "stall"
    event = EventKind.TIMEOUT
    ends_stream = "stall"

    def applies(self, site: Site) -> bool:
        if site.where == PROXY:
            return True
        return site.where == SOCKET and site.op in ("read", "connect") and site.blocking

    def at_socket(self, context: FaultContext, site: Site, op: SocketCall) -> Any:
        raise stalled(op.sock)

    def at_proxy(self, site: Site, skip: int) -> ProxyCut:
        # Nothing more crosses; the proxy closes the connection after the stall bound, so a
        # client without a timeout sees an end instead of hanging the test.
        return ProxyCut("timeout", _stream(site), {"timeout": STALL_MS})


def stalled(sock: socket.socket) -> TimeoutError:
    if sock.gettimeout() is not None:
        return TimeoutError("timed out")  # what a real socket timeout says
    return TimeoutError(
        "faultline sweep: this read was stalled and the socket has no timeout, so against a "
        "real stalled peer it would block forever"
    )


class TruncateKind(FaultKind):
    """The peer closes the connection before this read: it returns EOF, mid-message."""

    name = "truncate"
    event = EventKind.EOF
    ends_stream = "eof"

    def applies(self, site: Site) -> bool:
        return (site.where == SOCKET and site.op == "read") or site.where == PROXY

    def at_socket(self, context: FaultContext, site: Site, op: SocketCall) -> Any:
        op.end()
        return op.eof()

    def at_proxy(self, site: Site, skip: int) -> ProxyCut:
        if site.op == "accept":  # accepted, then closed before a byte crosses
            return ProxyCut("refuse", "upstream", {"reset": 0})
        # Exactly the bytes before the offset cross, then both peers see the end.
        return ProxyCut("limit_data", _stream(site), {"bytes": skip})


class ResetKind(FaultKind):
    """The peer resets the connection: this read or write raises ``ConnectionResetError``
    (later reads return EOF); a connect is refused. At a shutdown it raises
    ``OSError(ENOTCONN)``, as Linux does once the peer has reset: cleanup that lets that error
    skip the close after it leaks the socket. A close ends the connection with a reset instead of
    an orderly close (as closing with unread input or ``SO_LINGER`` 0 does): the close itself
    succeeds (Python ignores ``ECONNRESET`` at close), and the peer's next read raises
    ``ConnectionResetError`` instead of returning EOF."""

    name = "reset"
    event = EventKind.RESET
    ends_stream = "eof"

    def applies(self, site: Site) -> bool:
        return site.where in (SOCKET, PROXY)

    def at_proxy(self, site: Site, skip: int) -> ProxyCut:
        if site.op == "accept":
            return ProxyCut("refuse", "upstream", {"reset": 1})
        # From the chunk that reaches the offset on, nothing crosses: both peers get an RST.
        return ProxyCut("reset_peer", _stream(site), {"timeout": 0})

    def at_socket(self, context: FaultContext, site: Site, op: SocketCall) -> Any:
        if site.op == "connect":
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, "Connection refused (injected by the faultline sweep)"
            )
        if site.op == "close":
            with contextlib.suppress(OSError):
                op.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT)
            return op.proceed()
        if site.op == "shutdown":
            op.end()
            raise OSError(
                errno.ENOTCONN,
                "Transport endpoint is not connected: the peer reset the connection before "
                "this shutdown (injected by the faultline sweep)",
            )
        op.end()
        raise ConnectionResetError(
            errno.ECONNRESET, "Connection reset by peer (injected by the faultline sweep)"
        )


class ShortReadKind(FaultKind):
    """This read returns at most one byte."""

    name = "short_read"
    event = EventKind.SHORT_READ

    def applies(self, site: Site) -> bool:
        return site.where == SOCKET and site.op == "read"

    def at_socket(self, context: FaultContext, site: Site, op: SocketCall) -> Any:
        args = list(op.args)
        if op.method in ("recv_into", "recvfrom_into"):
            if len(args) < 2:
                args.append(1)
            else:
                args[1] = 1
        else:
            args[0] = 1
        return op.proceed(tuple(args))


class ReplyLostKind(FaultKind):
    """At a proxy's chunk going up: the request reaches the server, and the connection is reset
    before the first byte of its reply reaches the client (the proxy's ``reply_lost`` toxic). A
    client that retries a write whose reply it never saw may apply it twice."""

    name = "reply_lost"
    event = EventKind.RESET

    def applies(self, site: Site) -> bool:
        return site.where == PROXY and site.op == "up"

    def at_proxy(self, site: Site, skip: int) -> ProxyCut:
        return ProxyCut("reply_lost", "downstream", {"reset": 1, "times": 1})


class PreemptKind(FaultKind):
    """Force a thread switch at a scheduling point (a lock acquire, an event set, a fault point,
    ...) where another thread could run: another thread (drawn from the seed) runs, and the
    preempted one waits until the others block or end. The run is otherwise the scheduler's
    run without preemptions, so this is one preemption at each place a thread can lose the CPU:
    what inverts a lock order into a deadlock, or lets a check and its use be split."""

    name = "preempt"
    event = EventKind.PREEMPT
    scheduled = True

    def applies(self, site: Site) -> bool:
        return site.where == THREAD

    def switch(self, others: int, draw: Callable[[int], int]) -> tuple[int, bool]:
        return draw(others), False


class PreemptStepKind(PreemptKind):
    """Like ``preempt``, but the other thread runs one step only (to its next scheduling point),
    then the preempted thread goes on: a window of one operation of another thread, opened at
    each place a thread can lose the CPU (what a reader holding a buffer meets when the writer
    replaces it)."""

    name = "preempt_step"

    def switch(self, others: int, draw: Callable[[int], int]) -> tuple[int, bool]:
        return draw(others), True


KINDS: dict[str, Callable[[], FaultKind]] = {
    "raise": RaiseKind,
    "disconnect": DisconnectKind,
    "stall": StallKind,
    "truncate": TruncateKind,
    "reset": ResetKind,
    "short_read": ShortReadKind,
    "reply_lost": ReplyLostKind,
    "preempt": PreemptKind,
    "preempt_step": PreemptStepKind,
}
"""Every kind ``kinds=`` may name (an exception class also stands for a ``raise`` of it)."""

DEFAULT_KINDS = ("raise", "disconnect", "stall", "truncate", "reset", "short_read", "reply_lost")
KINDS_HELP = (
    "kinds are names among "
    + ", ".join(repr(k) for k in KINDS)
    + " or exception classes (raised at points and calls), for example "
    "kinds=['disconnect', 'stall'] or kinds=[ConnectionResetError]"
)


def parse_kinds(given: object, *, where: str) -> tuple[FaultKind, ...]:
    """The kinds named by ``given`` (a name, a comma-separated string, or a list of names and
    exception classes); :class:`FaultlineError` naming ``where`` for a bad one."""
    if given is None:
        given = DEFAULT_KINDS
    if isinstance(given, str):
        given = [k.strip() for k in given.split(",") if k.strip()]
    if not isinstance(given, (list, tuple)) or not given:
        raise FaultlineError(f"{where}: kinds must be a non-empty list; {KINDS_HELP}")
    kinds: list[FaultKind] = []
    for item in given:
        if isinstance(item, type) and issubclass(item, BaseException):
            kind: FaultKind = RaiseKind(item)
        elif isinstance(item, str) and item in KINDS:
            kind = KINDS[item]()
        else:
            import difflib

            close = difflib.get_close_matches(str(item), KINDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FaultlineError(f"{where}: unknown fault kind {item!r}{hint}; {KINDS_HELP}")
        if any(k.name == kind.name for k in kinds):
            raise FaultlineError(f"{where}: fault kind {kind.name!r} is given twice")
        kinds.append(kind)
    return tuple(kinds)
