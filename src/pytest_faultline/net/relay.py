"""The event loop under the embedded proxy: its thread, its commands, its connections.

:class:`ProxyLoop` runs one ``selectors`` loop on its own thread over the listening socket and
every connection. Calls from other threads are handed to that thread and waited for, so the loop
owns all connection state and needs no locks. The loop accepts and drops connections, attaches
toxics to them and runs their timers; moving the bytes (the no-toxic fast path and the toxic
pipeline) is :class:`~._pump.FlowPump`'s, and the connections themselves are in :mod:`._conns`.
:class:`~.proxy.EmbeddedProxy` (the public API) holds one :class:`ProxyLoop` and calls its
methods.
"""

from __future__ import annotations

import _thread
import errno
import socket
import struct
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .. import _raw
from .._context import EventKind
from ._conns import Conn, Flow, close_quietly, drain
from ._poll import READ, WRITE, Poller
from ._pump import FlowPump
from .protocol import (
    Chooser,
    ProxyConflict,
    ProxyError,
    ProxyNotFound,
    ProxyServerError,
    format_address,
)
from .sockets import exempt
from .toxics import RESET, Refuse, Stage, ToxicState, make_stage

__all__ = ["ConnectionObserver", "ProxyLoop", "Recorder", "describe_attributes", "set_observer"]


CALL_BOUND_S = _raw.CALL_BOUND_S
JOIN_BOUND_S = _raw.CALL_BOUND_S  # the proxy thread ends within one call bound
IDLE_SELECT_S = 1.0
# A connection refused gracefully is half-closed (FIN) and kept open this long before it is
# closed: data the client sent meanwhile is then not answered with a reset, so the client sees
# the same clean end of stream on every run, whenever its bytes arrive.
LINGER_S = 1.0
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
Recorder = Callable[[EventKind, str, str], object]
# ``observer(loop, conn, now)``: told of each new connection of every embedded proxy (on the
# proxy's thread, before the upstream is contacted); returns per-connection stages to run after
# the toxics' (the fault sweep watches and cuts proxied connections this way). Unset, a new
# connection pays one global lookup, and the data path nothing.
ConnectionObserver = Callable[["ProxyLoop", Conn, float], "list[tuple[ToxicState, Stage]]"]
_observer: ConnectionObserver | None = None


def set_observer(observer: ConnectionObserver | None) -> ConnectionObserver | None:
    """Install ``observer`` for every embedded proxy's new connections; return the previous."""
    global _observer
    previous = _observer
    _observer = observer
    return previous


class ProxyLoop:
    """Connections and data of one proxy, on the proxy's own thread (see the module doc)."""

    def __init__(
        self,
        name: str,
        upstream: tuple[str, int],
        listen: tuple[str, int],
        *,
        enabled: bool,
        chooser: Callable[[str], Chooser],
        record: Recorder | None,
    ) -> None:
        self.name = name
        self._upstream = upstream
        self._listen = listen
        self._chooser = chooser
        self._record = record
        self._toxics: dict[str, ToxicState] = {}
        self._conns: dict[int, Conn] = {}
        self._timed: set[Flow] = set()
        self._lingering: list[tuple[float, socket.socket]] = []
        self._count = 0
        self._listener: socket.socket | None = None
        self._sel = Poller()
        self._pump = FlowPump(
            self._sel, self._timed, drop=self._drop, report=self._report, now=_raw.monotonic
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, READ, None)
        self._commands: list[tuple[Callable[[], Any], list[Any], _raw.RawEvent]] = []
        self._commands_lock = _raw.allocate_lock()
        self._stopping = False
        self._closed = False
        try:
            if enabled:
                self._bind()
        except BaseException:
            self._release()
            raise
        # A raw thread: the scheduler patches threading.Thread, and the proxy must never be
        # one of the threads it manages.
        self._ident: int | None = None
        self._finished = _raw.RawEvent()
        _thread.start_new_thread(self._main, ())

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the proxy thread and return its result (or raise its error)."""
        if self._stopping or self._finished.is_set():
            raise ProxyError(f"proxy {self.name!r} is closed; make a new one")
        if _raw.get_ident() == self._ident:
            return fn()
        box: list[Any] = []
        done = _raw.RawEvent()
        with self._commands_lock:
            self._commands.append((fn, box, done))
        self._wake()
        if not done.wait(CALL_BOUND_S):
            raise ProxyServerError(
                f"proxy {self.name!r} did not answer within {CALL_BOUND_S:.0f} s; its thread "
                f"is stuck (please report this as a pytest-faultline bug)"
            )
        ok, value = box
        if not ok:
            raise value
        return value

    def _wake(self) -> None:
        # OSError: the buffer is full (a wake-up is pending anyway) or the proxy is closed.
        with suppress(OSError):
            self._wake_w.send(b"\0")

    def _run_commands(self) -> None:
        with self._commands_lock:
            commands, self._commands = self._commands, []
        for fn, box, done in commands:
            try:
                box[:] = [True, fn()]
            except BaseException as exc:  # handed back to the calling thread
                box[:] = [False, exc]
            done.set()

    # -- what the proxy's owner may do, from any thread -------------------------------------------

    @property
    def listen(self) -> tuple[str, int]:
        return self._listen

    @property
    def upstream(self) -> tuple[str, int]:
        return self._upstream

    @upstream.setter
    def upstream(self, address: tuple[str, int]) -> None:
        self._upstream = address  # read by the loop at each new connection

    @property
    def enabled(self) -> bool:
        return self._listener is not None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connections(self) -> int:
        return len(self._conns)

    def toxic_state(self, name: str) -> ToxicState:
        state = self._toxics.get(name)
        if state is None:
            raise ProxyNotFound(f"toxic not found: proxy {self.name!r} has no toxic {name!r}")
        return state

    def toxic_states(self) -> list[ToxicState]:
        return list(self._toxics.values())

    def add_toxic(self, state: ToxicState) -> None:
        self.call(lambda: self._add_toxic(state))

    def update_toxic(self, state: ToxicState, attributes: dict[str, int], toxicity: float) -> None:
        def apply() -> None:
            state.attributes = attributes
            state.toxicity = toxicity
            self._note(
                EventKind.PROXY, f"update toxic {state.name}: {attributes}, toxicity {toxicity}"
            )
            now = _raw.monotonic()
            for conn in list(self._conns.values()):
                flow = conn.flow(state.stream)
                self._pump.touch(flow)
                self._pump.flush(flow, now)

        self.call(apply)

    def remove_toxic(self, name: str) -> None:
        self.toxic_state(name)
        self.call(lambda: self._remove_toxic(name))

    def remove_all_toxics(self) -> None:
        def remove_all() -> None:
            for name in list(self._toxics):
                self._remove_toxic(name)

        self.call(remove_all)

    def disable(self) -> None:
        self.call(self._disable)

    def enable(self) -> None:
        self.call(self._enable)

    def reset_connections(self) -> None:
        self.call(lambda: self._drop_all(reset=True, why="reset_connections"))

    def end_connection(self, conn: Conn, why: str) -> None:
        """Close ``conn`` (both peers see EOF) if it is still open."""
        self.call(lambda: self._drop(conn, reset=False, why=why))

    def move_listen(self, address: tuple[str, int]) -> None:
        def move() -> None:
            was_enabled = self.enabled
            old = self._listen
            self._close_listener()
            self._listen = address
            if was_enabled:
                try:
                    self._bind()
                except ProxyError:
                    self._listen = old
                    self._bind()
                    raise

        self.call(move)

    def close(self) -> None:
        """Close every connection and the listening socket, and stop the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            # ProxyError: the thread is gone already; what is left is released below.
            with suppress(ProxyError):
                self.call(lambda: self._drop_all(reset=False, why=None))
        finally:
            self._stopping = True
            self._wake()
            self._finished.wait(JOIN_BOUND_S)
            self._release()

    # -- toxics and state, on the proxy thread --------------------------------------------------

    def _add_toxic(self, state: ToxicState) -> None:
        if state.name in self._toxics:
            raise ProxyConflict(
                f"toxic already exists: proxy {self.name!r} has a toxic {state.name!r}; "
                f"give the new one another name=, or update() or remove() the old one"
            )
        self._toxics[state.name] = state
        self._note(
            EventKind.PROXY,
            f"add toxic {state.name}: {state.type} {state.stream} {describe_attributes(state)}, "
            f"toxicity {state.toxicity}",
        )
        now = _raw.monotonic()
        for conn in list(self._conns.values()):
            self._attach(conn, state, now, new=False)

    def _remove_toxic(self, name: str) -> None:
        state = self._toxics.pop(name, None)
        if state is None:
            raise ProxyNotFound(f"toxic not found: proxy {self.name!r} has no toxic {name!r}")
        self._note(EventKind.PROXY, f"remove toxic {name}")
        now = _raw.monotonic()
        for conn in list(self._conns.values()):
            flow = conn.flow(state.stream)
            for index, (s, stage) in enumerate(flow.stages):
                if s is state:
                    del flow.stages[index]
                    if stage is not None:
                        self._pump.feed(flow, index, stage.removed(now))
                    break
            self._pump.touch(flow)
            self._pump.flush(flow, now)

    def _disable(self) -> None:
        if self._listener is None:
            return
        self._close_listener()
        self._drop_all(reset=False, why="proxy disabled")

    def _enable(self) -> None:
        if self._listener is None:
            self._bind()
            self._note(EventKind.PROXY, "proxy enabled")

    # -- the loop -------------------------------------------------------------------------------

    def _main(self) -> None:
        self._ident = _raw.get_ident()
        _raw.current_thread().name = f"faultline-proxy-{self.name}"
        try:
            self._run()
        finally:
            _raw.forget_dummy_thread()
            self._finished.set()

    def _run(self) -> None:
        try:
            # The hot loop: as little Python per wake-up as possible (every microsecond here is
            # added to each round trip through the proxy).
            poll = self._sel.poll
            entries = self._sel.entries
            events = self._sel.events
            on_event = self._on_event
            while not self._stopping:
                if self._commands:  # appended under the lock, then a wake-up: no lost command
                    self._run_commands()
                for fd, raw in poll(self._select_timeout() if self._timed else IDLE_SELECT_S):
                    entry = entries.get(fd)
                    if entry is None:  # unregistered by an earlier event of this batch
                        continue
                    data, sock, registered = entry
                    if type(data) is Conn:
                        on_event(data, sock, raw if raw == READ else events(raw, registered))
                    elif data is None:
                        with suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        self._accept()
                if self._lingering:
                    self._close_lingering(_raw.monotonic())
                if self._timed:
                    try:
                        self._run_timers()
                    except Exception as exc:  # keep serving the other connections
                        self._note(
                            EventKind.PROXY,
                            f"internal error in a timer (please report it): {exc!r}",
                        )
        finally:
            self._run_commands()
            self._close_lingering(None)

    def _close_lingering(self, now: float | None) -> None:
        """Close the half-closed sockets whose time is up (all of them with ``now=None``)."""
        keep = []
        for due, sock in self._lingering:
            if now is not None and due > now:
                keep.append((due, sock))
            else:
                drain(sock)
                close_quietly(sock)
        self._lingering = keep

    def _select_timeout(self) -> float:
        if not self._timed:
            return IDLE_SELECT_S
        times = [t for f in self._timed if (t := f.next_time()) is not None]
        if not times:
            return IDLE_SELECT_S
        return min(max(min(times) - _raw.monotonic(), 0.0), IDLE_SELECT_S)

    def _run_timers(self) -> None:
        if not self._timed:
            return
        now = _raw.monotonic()
        for flow in list(self._timed):
            if flow.conn.closed:
                self._timed.discard(flow)
                continue
            for index, (_, stage) in enumerate(list(flow.stages)):
                if stage is not None and (due := stage.deadline()) is not None and due <= now:
                    self._pump.feed(flow, index + 1, stage.fire(now))
            self._pump.flush(flow, now)

    def _on_event(self, conn: Conn, sock: socket.socket, mask: int) -> None:
        if conn.closed:
            return
        try:
            if mask == READ and not conn.connecting:
                # Most events: data to relay. The fast path leaves every mask as it was.
                if self._pump.read(conn.up if sock is conn.client else conn.down):
                    return
            elif sock is conn.server and conn.connecting:
                self._connected(conn)
            else:
                if mask & WRITE:
                    flow = conn.up if sock is conn.server else conn.down
                    self._pump.flush(flow, _raw.monotonic())
                if mask & READ and not conn.closed:
                    self._pump.read(conn.up if sock is conn.client else conn.down)
        except OSError as exc:
            # A peer reset (or a socket error): pass it on as a reset to the other peer.
            self._drop(conn, reset=True, why=f"connection error: {exc}")
        except Exception as exc:  # a bug costs one connection, not the proxy
            self._drop(conn, reset=True, why=f"internal error (please report it): {exc!r}")
        if not conn.closed:
            self._pump.update(conn)

    # -- connections ------------------------------------------------------------------------

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # too many open files, a connection aborted before accept
                return
            try:
                self._open(client)
            except OSError as exc:  # the client reset before we could set it up
                self._note(EventKind.PROXY, f"lost a new connection: {exc}")
                close_quietly(client)

    def _open(self, client: socket.socket) -> None:
        # The proxy's own connections stay out of the test's socket-level faults: those are for
        # the code under test, and the proxy has toxics of its own.
        exempt(client)
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = self._upstream
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )[0]
            server = exempt(socket.socket(family, kind, proto))
        except OSError as exc:
            self._note(
                EventKind.DISCONNECT,
                f"cannot reach upstream {format_address((host, port))}: {exc}; client closed",
            )
            close_quietly(client)
            return
        server.setblocking(False)
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._count += 1
        conn = Conn(self._count, client, server)
        self._conns[conn.number] = conn
        now = _raw.monotonic()
        for state in self._toxics.values():
            stage = self._attach(conn, state, now, new=True)
            if isinstance(stage, Refuse):
                self._refuse(conn, state, stage)
                return
        observer = _observer
        if observer is not None:
            # After the toxics: the observer's stages see what would reach each peer.
            for state, stage in observer(self, conn, now):
                flow = conn.flow(state.stream)
                flow.stages.append((state, stage))
                self._pump.touch(flow)
                if isinstance(stage, Refuse):
                    self._refuse(conn, state, stage)
                    return
        code = server.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._refused(conn, code)
            return
        self._pump.update(conn)

    def _refuse(self, conn: Conn, state: ToxicState, stage: Refuse) -> None:
        cut = stage.connect()
        self._report(state, stage, conn.number, state.stream)
        self._drop(
            conn,
            reset=cut == RESET,
            why=f"toxic {state.name} {'reset' if cut == RESET else 'closed'} it at connect",
            linger=True,
        )

    def _connected(self, conn: Conn) -> None:
        code = conn.server.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._refused(conn, code)
            return
        conn.connecting = False

    def _refused(self, conn: Conn, code: int) -> None:
        host, port = self._upstream
        # As Toxiproxy: the client's connection was accepted, so it is closed (EOF).
        self._drop(
            conn,
            reset=False,
            why=f"upstream {host}:{port} refused connection {conn.number} "
            f"({errno.errorcode.get(code, code)}); client closed",
        )

    def _attach(self, conn: Conn, state: ToxicState, now: float, *, new: bool) -> Stage | None:
        if state.type == "refuse" and not new:
            roll = False  # acts at connect only
        elif state.selects_connections() and not (new and state.takes_new_connection()):
            roll = False  # limited to some new connections, and this one is not among them
        else:
            roll = self._chooser(f"{self.name}/{state.name}/toxicity").chance(state.toxicity)
        stage = (
            make_stage(state, self._chooser(f"{self.name}/{state.name}"), now, conn)
            if roll
            else None
        )
        flow = conn.flow(state.stream)
        if stage is not None:
            self._pump.unpipe(flow)
        flow.stages.append((state, stage))
        self._pump.touch(flow)
        return stage

    def _drop_all(self, *, reset: bool, why: str | None) -> None:
        if why is not None:
            self._note(
                EventKind.DISCONNECT, f"{why}: {'reset' if reset else 'closed'} every connection"
            )
        for conn in list(self._conns.values()):
            self._drop(conn, reset=reset, why=None)

    def _drop(
        self,
        conn: Conn,
        *,
        reset: bool,
        why: str | None,
        kind: EventKind = EventKind.DISCONNECT,
        linger: bool = False,
    ) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.number, None)
        if why is not None:  # before the peers can see it, so a test that saw it finds it
            self._note(kind, f"connection {conn.number}: {why}")
        for flow in conn.flows():
            self._timed.discard(flow)
            flow.close_pipe()
        # Upstream first: a client that sees the end knows the server's side has ended too.
        for sock in (conn.server, conn.client):
            if conn.masks.get(sock.fileno()):
                self._sel.unregister(sock)
            if reset:
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            elif linger and sock is conn.client:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                    self._lingering.append((_raw.monotonic() + LINGER_S, sock))
                    continue
            else:
                drain(sock)
            close_quietly(sock)

    def _report(self, state: ToxicState, stage: Stage, number: int, stream: str) -> None:
        self._note(
            EventKind.TOXIC,
            f"{state.name} ({state.type} {describe_attributes(state)}) acts on connection "
            f"{number} {stream}" + (f": {stage.detail}" if stage.detail else ""),
        )

    def _bind(self) -> None:
        host, port = self._listen
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            listener = exempt(socket.socket(family, socket.SOCK_STREAM))
        except OSError as exc:
            raise ProxyServerError(
                f"proxy {self.name!r} cannot listen on {host}:{port}: {exc}"
            ) from None
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(512)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            hint = (
                "another process or proxy uses that port; pick another port or 0 for any free one"
                if exc.errno == errno.EADDRINUSE
                else "check the listen address"
            )
            raise ProxyServerError(
                f"proxy {self.name!r} cannot listen on {format_address((host, port))}: "
                f"{exc.strerror or exc} ({hint})"
            ) from None
        self._listen = (host, listener.getsockname()[1])
        self._listener = listener
        self._sel.register(listener, READ, "listen")

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _note(self, kind: EventKind, detail: str) -> None:
        if self._record is not None:
            self._record(kind, self.name, detail)

    def _release(self) -> None:
        self._close_listener()
        for conn in list(self._conns.values()):
            self._drop(conn, reset=False, why=None)
        for sock in (self._wake_r, self._wake_w):
            close_quietly(sock)
        self._sel.close()


def describe_attributes(state: ToxicState) -> str:
    return ", ".join(f"{k}={v}" for k, v in state.attributes.items())
