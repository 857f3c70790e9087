"""One run of a swept body: what it reached (recording) and the faults it injects.

The probe is told of every fault point (through the points' observer, installed only while a
sweep's run goes), every call to a target named in ``targets=``, every socket operation (the
socket layer's observer) and every connection through an embedded proxy, with each chunk of
its data (the proxy loop's observer, :mod:`._proxy`). It names each arrival as a
:class:`~.sites.Site` and, in a fault run, fires the planned faults when their sites come.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _raw
from .kinds import READS, FaultKind, SocketCall, stalled
from .sites import CALL, POINT, PROXY, SOCKET, WHERE_CODES, Site, caller_location, stem_hash

if TYPE_CHECKING:
    import socket

    from .._context import FaultContext
    from ..net._conns import Conn
    from ..net.relay import ProxyLoop
    from ..net.toxics import Stage, ToxicState
    from ._proxy import SiteStage

__all__ = ["Fault", "Probe"]

CONNECTS = ("connect", "connect_ex")
CLOSES = ("close", "shutdown")


@dataclass(frozen=True)
class Fault:
    """A planned fault: ``kind`` (an index into the sweep's kinds) at the site whose stem hashes
    to ``stem`` at ``hit`` (for a socket read or write: the first one at or after that offset).
    These four numbers are what a run's token carries."""

    kind: int
    where: int
    stem: int
    hit: int

    def choices(self) -> list[int]:
        return [self.kind, self.where, self.stem, self.hit]


@dataclass
class _Conn:
    name: str
    received: int = 0
    sent: int = 0
    ended: str | None = None  # "stall" or "eof" after a fault that ends the stream
    closed: bool = False
    shutdowns: int = 0


@dataclass
class Probe:
    """The observers of one run. ``recording``: collect the sites; else fire ``faults``."""

    context: FaultContext
    kinds: tuple[FaultKind, ...]
    faults: tuple[Fault, ...] = ()
    recording: bool = False
    foreign: set[str] = field(default_factory=set)  # socket labels of earlier runs
    sites: list[Site] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    fired: list[tuple[Fault, Site]] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    active: bool = True  # False once the run is over: stages left on live connections go idle
    proxy_base: int = 0  # proxies with generated names made before the sweep began

    def __post_init__(self) -> None:
        self._lock = _raw.allocate_lock()
        self._hits: dict[tuple[str, str], int] = {}
        self._conns: dict[str, _Conn] = {}
        self._roles: dict[str, int] = {}
        self._hashes: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[int, int], list[Fault]] = {}
        for fault in self.faults:
            self._pending.setdefault((fault.where, fault.stem), []).append(fault)
        self._proxy_conns: dict[str, int] = {}
        self._proxied: list[tuple[ProxyLoop, Conn]] = []
        self._generated_before = set(self._generated_proxies())

    # -- arrivals ------------------------------------------------------------------------------

    def on_point(self, name: str, context: dict[str, Any]) -> None:
        __tracebackhide__ = True
        self._arrive_call(POINT, name)

    def on_call(self, path: str) -> None:
        __tracebackhide__ = True
        self._arrive_call(CALL, path)

    def _arrive_call(self, where: str, name: str) -> None:
        __tracebackhide__ = True
        with self._lock:
            hit = self._hits[(where, name)] = self._hits.get((where, name), 0) + 1
            site = Site(where, name, "", hit, caller_location(1) if self.recording else "")
            fault = self._arrive(site, lambda f: f.hit == hit)
        if fault is not None:
            kind = self.kinds[fault.kind]
            self._record(fault, site)
            kind.at_call(self.context, site)

    def on_socket(
        self,
        method: str,
        sock: socket.socket,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        name_of: Callable[[socket.socket], str | None],
    ) -> Any:
        __tracebackhide__ = True
        if method == "accept":
            if name_of(sock) is None:  # a listener of faultline's own (a proxy's)
                return call(sock, *args)
            result = call(sock, *args)
            label = name_of(result[0])
            if label is not None:
                with self._lock:
                    self._conn(label)  # connections are named in the order they appear
            return result
        label = name_of(sock)
        if label is None or label in self.foreign:
            return call(sock, *args)
        if method in CLOSES:
            return self._on_close(method, sock, call, args, label)
        if method in CONNECTS:
            op = "connect"
        elif method in READS:
            op = "read"
        else:
            op = "write"
        fault: Fault | None = None
        with self._lock:
            conn = self._conn(label)
            if op == "read" and conn.ended is not None:
                ended = conn.ended
            else:
                ended = None
                offset = conn.received if op == "read" else conn.sent if op == "write" else 0
                blocking = sock.gettimeout() != 0.0
                location = caller_location(1) if self.recording else ""
                site = Site(SOCKET, conn.name, op, offset, location, blocking)
                fault = self._arrive(site, lambda f: f.hit <= offset)
        if ended == "stall":
            raise stalled(sock)
        if ended == "eof":
            return SocketCall(method, sock, call, args).eof()
        if fault is None:
            result = call(sock, *args)
        else:
            kind = self.kinds[fault.kind]
            self._record(fault, site)
            if kind.ends_stream is not None:
                with self._lock:
                    conn.ended = kind.ends_stream
            result = kind.at_socket(self.context, site, SocketCall(method, sock, call, args))
        if op != "connect":
            size = _size(method, result, args)
            with self._lock:
                if op == "read":
                    conn.received += size
                else:
                    conn.sent += size
        return result

    def _on_close(
        self,
        method: str,
        sock: socket.socket,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        label: str,
    ) -> Any:
        """A close or shutdown of a connection this run used: a site (the first close of the
        connection; each shutdown, numbered)."""
        __tracebackhide__ = True
        fault: Fault | None = None
        with self._lock:
            conn = self._conns.get(label)
            if conn is not None and not conn.closed and sock.fileno() != -1:
                if method == "close":
                    hit = 0
                    conn.closed = True
                else:
                    hit = conn.shutdowns
                    conn.shutdowns += 1
                location = caller_location(1) if self.recording else ""
                site = Site(SOCKET, conn.name, method, hit, location)
                fault = self._arrive(site, lambda f: f.hit == hit)
        if fault is None:
            return call(sock, *args)
        kind = self.kinds[fault.kind]
        self._record(fault, site)
        return kind.at_socket(self.context, site, SocketCall(method, sock, call, args))

    # -- proxies -------------------------------------------------------------------------------

    def on_proxy_connection(
        self, loop: ProxyLoop, conn: Conn, now: float
    ) -> list[tuple[ToxicState, Stage]]:
        """A new connection through an embedded proxy (on the proxy's thread): a site, and
        the stages that make each chunk of its data one."""
        from ..net.address import format_address
        from ._proxy import SiteStage, cut_stage

        if not self.active:
            return []
        location = f"-> {format_address(loop.upstream)}"
        with self._lock:
            label = self._proxy_label(loop.name)
            n = self._proxy_conns[label] = self._proxy_conns.get(label, 0) + 1
            name = f"{label}#{n}"
            site = Site(PROXY, name, "accept", 0, location)
            fault = self._arrive(site, lambda f: f.hit == 0)
        up, down = (
            SiteStage(
                stream,
                now,
                loop,
                conn,
                watch=self._on_chunk,
                name=name,
                op=op,
                location=location,
            )
            for stream, op in (("upstream", "up"), ("downstream", "down"))
        )
        up.sibling, down.sibling = down, up
        if fault is not None:
            kind = self.kinds[fault.kind]
            self._record(fault, site)
            self._cut(loop, conn)
            cut = kind.at_proxy(site, 0)
            label = f"sweep {kind.name}"
            if cut.type == "refuse":
                return [cut_stage(cut, label, now, conn)]
            up.take(cut, label, now)
        return [(up.toxic, up), (down.toxic, down)]

    def _on_chunk(self, stage: SiteStage, offset: int, size: int, now: float) -> None:
        if not self.active:
            return
        with self._lock:
            site = Site(PROXY, stage.name, stage.op, offset, stage.location)
            fault = self._arrive(site, lambda f: f.hit < offset + size)  # the chunk reaches it
        if fault is None:
            return
        kind = self.kinds[fault.kind]
        self._record(fault, site)
        self._cut(stage.loop, stage.conn)
        stage.take(kind.at_proxy(site, max(fault.hit - offset, 0)), f"sweep {kind.name}", now)

    def _cut(self, loop: ProxyLoop, conn: Conn) -> None:
        with self._lock:
            self._proxied.append((loop, conn))

    def finish(self) -> None:
        """The run is over: stages left on live connections go idle, and the proxied
        connections it cut are closed, so no fault (a stall holding a connection open) outlives
        its run. Connections it did not fault stay as the body left them."""
        from ..net.protocol import ProxyError

        self.active = False
        with self._lock:
            proxied, self._proxied = self._proxied, []
        for loop, conn in proxied:
            if not conn.closed:
                with contextlib.suppress(ProxyError):  # the body closed its proxy
                    loop.end_connection(conn, "the sweep's run ended")

    def _generated_proxies(self) -> list[str]:
        from ..net.proxies import PROXIES

        pool = self.context.peek(PROXIES)
        return [] if pool is None else list(pool.generated)

    def _proxy_label(self, proxy: str) -> str:
        """A proxy's name in this run: its own, unless it was made in the run with a generated
        name (those are numbered again in each run from where the sweep began, so that a run's
        ``proxy2`` is the next one's)."""
        generated = self._generated_proxies()
        if proxy not in generated or proxy in self._generated_before:
            return proxy
        fresh = [p for p in generated if p not in self._generated_before]
        return f"proxy{self.proxy_base + fresh.index(proxy) + 1}"

    # -- bookkeeping (under the lock) ----------------------------------------------------------

    def _conn(self, label: str) -> _Conn:
        conn = self._conns.get(label)
        if conn is None:
            role = label.rsplit("-", 1)[0]
            n = self._roles.get(role, 0)
            self._roles[role] = n + 1
            conn = self._conns[label] = _Conn(f"{role}#{n}")
            self.labels.add(label)
        return conn

    def _arrive(self, site: Site, due: Callable[[Fault], bool]) -> Fault | None:
        key = site.key
        if key not in self.reached:
            self.reached.add(key)
            if self.recording:
                self.sites.append(site)
        if not self._pending:
            return None
        stem = self._hashes.get((site.where, site.stem))
        if stem is None:
            stem = self._hashes[(site.where, site.stem)] = stem_hash(site.where, site.stem)
        waiting = self._pending.get((WHERE_CODES[site.where], stem))
        if not waiting:
            return None
        for fault in waiting:
            if due(fault):
                waiting.remove(fault)
                return fault
        return None

    def _record(self, fault: Fault, site: Site) -> None:
        kind = self.kinds[fault.kind]
        self.fired.append((fault, site))
        self.context.record(kind.event, site.describe(), f"{kind.name} (fault sweep)")


def _size(method: str, result: Any, args: tuple[Any, ...]) -> int:
    if method == "recv":
        return len(result)
    if method in ("recv_into", "send", "sendto", "sendmsg"):
        return int(result)
    if method == "recvfrom_into":
        return int(result[0])
    if method in ("recvfrom", "recvmsg"):
        return len(result[0])
    if method == "sendall":
        return memoryview(args[0]).nbytes
    return 0
