"""Socket-level faults without a proxy: short reads, stalls, closes and resets mid-stream.

:class:`SocketFaults` (``faultline.sockets``) replaces the I/O methods of ``socket.socket`` on the
class for the test only. ``socket.socket`` is a Python subclass of the C ``_socket.socket``, so
its methods can be replaced there and every instance sees them: plain ``recv`` calls,
``makefile()`` readers (``SocketIO`` calls ``recv_into``) and asyncio's selector transports (they
call ``recv``, ``recv_into`` and ``send`` on the socket object). Per-connection state lives in a
``WeakKeyDictionary`` keyed by the socket; a socket that no fault matches goes straight to the
original method after one dictionary lookup.

Faults apply to TCP connections only (``AF_INET``/``AF_INET6`` and ``SOCK_STREAM``): datagram and
Unix sockets pass through untouched, which keeps asyncio's self-pipe (a Unix socketpair) working.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import socket
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind
from ..errors import FaultlineError
from .address import format_address, split_address

if TYPE_CHECKING:
    from types import TracebackType

    from .._context import FaultContext
    from ..actions import Hit
    from ..decider import Stream

__all__ = ["STALL_BOUND_S", "SocketFault", "SocketFaults", "exempt"]

STALL_BOUND_S = _raw.STALL_BOUND_S
"""How long a read on a socket without a timeout stays stalled before faultline gives up."""

NONBLOCKING_PAUSE_S = 0.001
"""How long a read on a stalled non-blocking socket waits before it says it would block."""

EVENTS_PER_CONNECTION = 100
"""Short reads recorded one by one per connection and fault; later ones are only counted."""


PEER_HELP = (
    "give peer as 'host:port' (for example '127.0.0.1:8080' or '[::1]:8080') or as a "
    "(host, port) tuple such as server.getsockname()"
)

_EXEMPT: weakref.WeakSet[socket.socket] = weakref.WeakSet()
_LIVE: weakref.WeakSet[SocketFaults] = weakref.WeakSet()  # the tests' layers now installed

PeerAddress = tuple[str, int]


def exempt(sock: socket.socket) -> socket.socket:
    """Keep ``sock`` out of every socket fault and out of ``disconnect_all`` (faultline's own
    sockets, such as a proxy's relay connections, call this so a test's socket faults hit only
    the code under test). Takes effect at once, also for a socket already in use. Returns
    ``sock``."""
    _EXEMPT.add(sock)
    for faults in list(_LIVE):
        faults._forget(sock)
    return sock


def _check_count(what: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FaultlineError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return value


def _parse_peer(peer: object) -> tuple[str, frozenset[str], int] | None:
    """(shown form, the addresses it stands for, port), or None for 'every peer'."""
    if peer is None:
        return None
    try:
        host, port = split_address(peer, min_port=1)
    except ValueError as exc:
        raise FaultlineError(f"cannot read peer {peer!r}: {exc}; {PEER_HELP}") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FaultlineError(
            f"peer {peer!r}: host {host!r} does not resolve ({exc.strerror}); {PEER_HELP}"
        ) from None
    addresses = {str(info[4][0]) for info in infos}
    # A dual-stack socket reports an IPv4 peer as an IPv4-mapped IPv6 address.
    addresses |= {f"::ffff:{a}" for a in addresses if ":" not in a}
    return format_address((host, port)), frozenset(addresses), port


class SocketFault:
    """One socket fault in force (returned by :class:`SocketFaults` methods).

    ``kind`` is ``"short_reads"``, ``"stall_after"``, ``"close_after"`` or ``"reset_after"``;
    ``nbytes`` its byte count; ``peer`` the peer it is scoped to (``None``: every TCP
    connection); ``fired`` how many times it injected. :meth:`remove` (or leaving a ``with``
    block) ends it: stalled reads resume. Every fault is removed when the test ends anyway.
    """

    def __init__(
        self,
        owner: SocketFaults,
        kind: str,
        nbytes: int,
        peer: tuple[str, frozenset[str], int] | None,
        index: int,
        bound: float = STALL_BOUND_S,
    ) -> None:
        self.kind = kind
        self.nbytes = nbytes
        self.peer = peer[0] if peer is not None else None
        self.active = True
        self.bound = bound
        self._owner = owner
        self._addresses = peer[1] if peer is not None else None
        self._port = peer[2] if peer is not None else 0
        self._index = index
        self._fired = _raw.CountLatch()
        self.threshold = kind != "short_reads"

    def __repr__(self) -> str:
        state = "" if self.active else " removed"
        return f"<SocketFault {self.describe()} fired={self.fired}{state}>"

    def describe(self) -> str:
        peer = f", peer={self.peer!r}" if self.peer is not None else ""
        return f"{self.kind}({self.nbytes}{peer})"

    def matches(self, peer: PeerAddress | None) -> bool:
        if self._addresses is None:
            return True
        return peer is not None and peer[1] == self._port and peer[0] in self._addresses

    def stream_name(self, label: str) -> str:
        return f"sockets.{self.kind}#{self._index}:{label}"

    @property
    def fired(self) -> int:
        """How many times this fault acted."""
        return self._fired.count

    def wait(self, n: int = 1, timeout: float = _raw.WAIT_BOUND_S) -> bool:
        """Block until this fault has fired ``n`` times in all (for example until a reader
        is stalled); False after ``timeout`` seconds. Use it instead of sleeping."""
        return self._fired.wait(n, timeout)

    def _fire(self) -> None:
        """Count one injection (waking the waiters it satisfies)."""
        self._fired.arrive()

    def remove(self) -> None:
        """End this fault now; reads stalled by it go on with the data the peer sent."""
        self._owner._remove(self)

    def __enter__(self) -> SocketFault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


class _Conn:
    """What faultline knows about one socket object."""

    __slots__ = (
        "active",
        "counts",
        "dropped",
        "eligible",
        "eof",
        "label",
        "peer",
        "recorded",
        "rules",
        "splits",
        "stalled",
        "streams",
        "version",
    )

    def __init__(self, eligible: bool, label: str) -> None:
        self.eligible = eligible
        self.label = label
        self.peer: PeerAddress | None = None
        self.version = -1
        self.rules: tuple[SocketFault, ...] = ()
        self.active = False
        self.eof = False
        self.dropped = False
        self.counts: dict[SocketFault, int] = {}
        self.splits: dict[SocketFault, int] = {}
        self.streams: dict[SocketFault, Stream] = {}
        self.recorded: dict[SocketFault, int] = {}
        self.stalled: set[SocketFault] = set()

    def name(self) -> str:
        if self.peer is None:
            return f"socket {self.label}"
        host, port = self.peer
        return f"socket {self.label} to {f'[{host}]' if ':' in host else host}:{port}"


class SocketFaults:
    """Socket-level faults for one test, reached as ``faultline.sockets``.

    Creating it patches ``socket.socket``'s I/O methods until the test ends; the methods below add
    faults. Each fault counts the bytes *read* per connection from the moment it is added, and
    applies to every TCP connection, or with ``peer=`` only to connections whose remote address
    is that peer (the client side of a connection to a server at that address).
    """

    def __init__(self, faultline: FaultContext) -> None:
        self.faultline = faultline
        self._lock = _raw.allocate_lock()
        self._conns: weakref.WeakKeyDictionary[socket.socket, _Conn] = weakref.WeakKeyDictionary()
        self._rules: list[SocketFault] = []
        self._version = 0
        self._changed = _raw.RawEvent()
        self._ended = False
        self._ordinals: dict[str, int] = {}
        self._made = 0
        self._install()
        _LIVE.add(self)
        faultline.add_handler("disconnect", self._on_disconnect)
        faultline.add_handler("wake", self._on_wake)

    # -- public API -----------------------------------------------------------------------------

    def short_reads(self, max_bytes: int, peer: str | tuple[str, int] | None = None) -> SocketFault:
        """Every read returns at most ``max_bytes`` bytes.

        Where each read is cut (1 to ``max_bytes`` bytes) is drawn from the test's seed, per
        connection, so the same seed gives the same split points. A read may still return less
        when less has arrived, as a real one does.
        """
        _check_count("short_reads(max_bytes)", max_bytes, 1)
        return self._add("short_reads", max_bytes, peer)

    def stall_after(
        self,
        nbytes: int,
        peer: str | tuple[str, int] | None = None,
        *,
        bound: float = STALL_BOUND_S,
    ) -> SocketFault:
        """After ``nbytes`` incoming bytes the stream stalls: nothing more arrives.

        A read then behaves as against a peer that went silent: with a socket timeout it raises
        ``TimeoutError("timed out")`` after that timeout; a non-blocking socket raises
        ``BlockingIOError``; a blocking socket without a timeout would hang forever, so faultline
        raises ``TimeoutError`` after ``bound`` seconds, saying so. :meth:`SocketFault.remove`
        lets stalled reads go on.
        """
        _check_count("stall_after(nbytes)", nbytes, 0)
        if not isinstance(bound, (int, float)) or isinstance(bound, bool) or bound <= 0:
            raise FaultlineError(f"stall_after(bound) must be seconds > 0, got {bound!r}")
        return self._add("stall_after", nbytes, peer, bound=float(bound))

    def close_after(self, nbytes: int, peer: str | tuple[str, int] | None = None) -> SocketFault:
        """The peer closes the connection after ``nbytes`` incoming bytes: reads return EOF
        (``b""``), and the connection is shut down so both ends see it end."""
        _check_count("close_after(nbytes)", nbytes, 0)
        return self._add("close_after", nbytes, peer)

    def reset_after(self, nbytes: int, peer: str | tuple[str, int] | None = None) -> SocketFault:
        """The peer resets the connection after ``nbytes`` incoming bytes: the next read raises
        ``ConnectionResetError`` (later reads return EOF, as on Linux), and the connection is
        shut down so both ends see it end."""
        _check_count("reset_after(nbytes)", nbytes, 0)
        return self._add("reset_after", nbytes, peer)

    @property
    def faults(self) -> list[SocketFault]:
        """The faults in force, oldest first."""
        with self._lock:
            return list(self._rules)

    def disconnect_all(self) -> int:
        """Drop every TCP connection this test made or used, on both ends: each is shut down in
        both directions, so its peer sees EOF, reads here return EOF and writes fail with
        ``BrokenPipeError``. Listening sockets stay open, so code can reconnect. Returns how
        many connections were dropped. The ``Disconnect`` action and the
        ``disconnect_mid_recycle`` scenario call this."""
        with self._lock:
            items = list(self._conns.items())
        dropped = 0
        for sock, conn in items:
            if not conn.eligible or conn.dropped or sock.fileno() == -1:
                continue
            if conn.peer is None and not self._learn_peer(sock, conn):
                continue  # listening or never connected: not a connection
            try:
                _socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                continue  # already gone
            with self._lock:
                conn.dropped = conn.eof = True
            self.faultline.record(EventKind.DISCONNECT, conn.name(), "shut down both directions")
            dropped += 1
        self._signal_change()
        return dropped

    # -- bookkeeping ----------------------------------------------------------------------------

    def _add(
        self, kind: str, nbytes: int, peer: object, *, bound: float = STALL_BOUND_S
    ) -> SocketFault:
        if self._ended:
            raise FaultlineError("this test's socket faults have ended; add faults during the test")
        parsed = _parse_peer(peer)
        with self._lock:
            rule = SocketFault(self, kind, nbytes, parsed, self._made, bound)
            self._made += 1
            self._rules.append(rule)
        self._signal_change()
        return rule

    def _remove(self, rule: SocketFault) -> None:
        with self._lock:
            if not rule.active:
                return
            rule.active = False
            self._rules.remove(rule)
        self._signal_change()

    def _signal_change(self) -> None:
        """Make every connection look at the faults again and wake reads stalled on them."""
        with self._lock:
            self._version += 1
            old, self._changed = self._changed, _raw.RawEvent()
        old.set()

    def _on_disconnect(self, hit: Hit | None) -> None:
        self.disconnect_all()

    def _on_wake(self, hit: Hit | None) -> None:
        self._ended = True
        _LIVE.discard(self)
        self._signal_change()

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            conn = self._conns.get(sock)
            if conn is not None:
                conn.eligible = conn.active = False
                conn.rules = ()

    def _register(self, sock: socket.socket, role: str) -> _Conn:
        try:
            eligible = (
                sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.type == socket.SOCK_STREAM
                and sock not in _EXEMPT
            )
        except OSError:
            eligible = False
        with self._lock:
            conn = self._conns.get(sock)
            if conn is None:
                conn = self._conns[sock] = _Conn(eligible, self._next_label(role))
            elif role != "socket" and conn.label.startswith("socket"):
                conn.label = self._next_label(role)
        return conn

    def _next_label(self, role: str) -> str:
        # Ordinals per role, so a server thread accepting and a client thread connecting
        # cannot reorder each other's names (stream names must not depend on timing).
        n = self._ordinals.get(role, 0)
        self._ordinals[role] = n + 1
        return f"{role}-{n}"

    def _learn_peer(self, sock: socket.socket, conn: _Conn) -> bool:
        try:
            peer = sock.getpeername()
        except OSError:
            return False
        conn.peer = (str(peer[0]), int(peer[1]))
        return True

    def _refresh(self, sock: socket.socket) -> _Conn:
        """The socket's state, with the faults that apply to it brought up to date."""
        conn = self._conns.get(sock)
        if conn is None:
            conn = self._register(sock, "socket")
        if not conn.eligible:
            conn.version = self._version
            return conn
        version = self._version
        if conn.peer is None:
            self._learn_peer(sock, conn)
        with self._lock:
            conn.rules = tuple(r for r in self._rules if r.matches(conn.peer))
            conn.active = bool(conn.rules) or conn.eof
            if conn.peer is not None:  # else look again next time: it may connect
                conn.version = version
        return conn

    # -- the read path --------------------------------------------------------------------------

    def _admit(
        self, sock: socket.socket, conn: _Conn, requested: int
    ) -> tuple[int, tuple[SocketFault, ...]] | None:
        """How many bytes the real read may take, and the faults that shaped it; None for EOF.
        Raises the reset or timeout a fault injects; blocks while the stream is stalled."""
        deadline: float | None = None
        while True:
            trigger: SocketFault | None = None
            with self._lock:
                if conn.eof:
                    return None
                changed = self._changed
                rules = conn.rules
                if conn.version != self._version:  # a fault went away while this read waited
                    rules = conn.rules = tuple(r for r in rules if r.active)
                limit = requested
                for rule in rules:
                    if rule.threshold:
                        remaining = rule.nbytes - conn.counts.get(rule, 0)
                        if remaining <= 0:
                            trigger = rule
                            break
                        limit = min(limit, remaining)
                    else:
                        split = conn.splits.get(rule)
                        if split is None:
                            split = conn.splits[rule] = self._draw(rule, conn)
                        limit = min(limit, split)
            if trigger is None:
                return limit, rules
            if trigger.kind == "stall_after":
                deadline = self._stall(sock, conn, trigger, changed, deadline)
                continue
            self._end_stream(sock, conn, trigger)
            if trigger.kind == "reset_after":
                raise ConnectionResetError(
                    errno.ECONNRESET,
                    f"Connection reset by peer (injected by faultline {trigger.describe()})",
                )
            return None

    def _draw(self, rule: SocketFault, conn: _Conn) -> int:
        stream = conn.streams.get(rule)
        if stream is None:
            stream = conn.streams[rule] = self.faultline.stream(rule.stream_name(conn.label))
        return stream.choice(rule.nbytes) + 1

    def _end_stream(self, sock: socket.socket, conn: _Conn, rule: SocketFault) -> None:
        with self._lock:
            if conn.eof:
                return
            conn.eof = True
            rule._fire()
        what = EventKind.RESET if rule.kind == "reset_after" else EventKind.EOF
        self.faultline.record(what, conn.name(), f"after {rule.nbytes} bytes ({rule.describe()})")
        with contextlib.suppress(OSError):  # it really ends, so the peer's code sees it too
            _socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _stall(
        self,
        sock: socket.socket,
        conn: _Conn,
        rule: SocketFault,
        changed: _raw.RawEvent,
        deadline: float | None,
    ) -> float:
        timeout = sock.gettimeout()
        with self._lock:
            first = rule not in conn.stalled
            if first:
                conn.stalled.add(rule)
                rule._fire()
        if first:
            self.faultline.record(
                EventKind.STALL, conn.name(), f"after {rule.nbytes} bytes ({rule.describe()})"
            )
        if timeout == 0.0:
            # The kernel still holds data, so a selector reports the socket readable again at
            # once; a short pause keeps an event loop polling a stalled socket from spinning.
            changed.wait(NONBLOCKING_PAUSE_S)
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        if self._ended:
            raise TimeoutError(
                f"faultline: this read was stalled by {rule.describe()} when the test ended"
            )
        now = _raw.monotonic()
        if deadline is None:
            deadline = now + (timeout if timeout is not None else rule.bound)
        if changed.wait(max(deadline - now, 0.0)) and _raw.monotonic() < deadline:
            return deadline  # the faults changed (removed, disconnect, test end): look again
        if timeout is not None:
            self.faultline.record(
                EventKind.TIMEOUT, conn.name(), f"read timed out after {timeout}s"
            )
            raise TimeoutError("timed out")  # what a real socket timeout says
        self.faultline.record(
            EventKind.TIMEOUT, conn.name(), f"stall bound of {rule.bound}s reached"
        )
        raise TimeoutError(
            f"faultline stall bound: this read was stalled by {rule.describe()} and the socket "
            f"has no timeout, so against a real stalled peer it would block forever; faultline "
            f"ended it after its bound of {rule.bound}s. Set a timeout on the socket "
            f"(sock.settimeout) so the code notices a stalled peer"
        )

    def _account(
        self,
        conn: _Conn,
        rules: tuple[SocketFault, ...],
        requested: int,
        limit: int,
        got: int,
    ) -> None:
        """Count ``got`` bytes read against each fault; record the reads a fault cut short."""
        record: list[tuple[SocketFault, int]] = []
        with self._lock:
            for rule in rules:
                if rule.threshold:
                    conn.counts[rule] = conn.counts.get(rule, 0) + got
                elif got > 0:
                    split = conn.splits.pop(rule, requested)
                    if split < requested and got == limit == split:
                        rule._fire()
                        seen = conn.recorded.get(rule, 0)
                        conn.recorded[rule] = seen + 1
                        if seen <= EVENTS_PER_CONNECTION:
                            record.append((rule, seen))
        for rule, seen in record:
            if seen < EVENTS_PER_CONNECTION:
                detail = f"read {got} of {requested} bytes ({rule.describe()})"
            else:
                detail = (
                    f"{EVENTS_PER_CONNECTION} short reads recorded on this connection; "
                    f"later ones are counted in the fault's .fired only"
                )
            self.faultline.record(EventKind.SHORT_READ, conn.name(), detail)

    def _read(
        self,
        sock: socket.socket,
        conn: _Conn,
        requested: int,
        flags: int,
        real: Callable[[int], Any],
        size: Callable[[Any], int],
        eof: Callable[[], Any],
    ) -> Any:
        if requested <= 0:
            return real(requested)
        admitted = self._admit(sock, conn, requested)
        if admitted is None:
            return eof()
        limit, rules = admitted
        result = real(limit)
        if not flags & socket.MSG_PEEK:  # a peek consumes nothing
            self._account(conn, rules, requested, limit, size(result))
        return result

    # -- installing the patches -----------------------------------------------------------------

    def _install(self) -> None:
        from ._socket_patches import install

        install(self)
        # Runs first at teardown: nothing may stay stalled once the patches are gone.
        self.faultline.undo.push(lambda: self._on_wake(None), "end socket faults")

    def _lookup(self, sock: socket.socket) -> _Conn:
        conn = self._conns.get(sock)
        if conn is None or conn.version != self._version:
            conn = self._refresh(sock)
        return conn
