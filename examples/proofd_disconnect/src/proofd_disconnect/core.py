"""What the buggy and the fixed daemon share: the wire format, the pool of ``Response`` objects,
client ids, sessions, the client manager with its cron thread, and the daemon's threads.

The implementations differ in four places only: ``Protocol.recycle``, the cron's handler of
CLIENT_DISCONNECT (``ClientManager.handle_disconnect``), what ``check_clients`` does to an idle
client (``ClientManager.drop_idle``), and how soon a freed cid is handed out again
(``ClientIds.quarantine_s``).

Wire format: one JSON object per line. Client to daemon: ``login`` (``user``, optional ``cid``
to reconnect, ``received``: how many results of each session the client has), ``start`` (a
session), ``task`` (``sid``, ``x``), ``ping``. Daemon to client:
``hello`` (``cid``, ``resumed``), ``started`` (``sid``), ``pong``, ``error``, and ``result``
(``user``, ``cid``, ``sid``, ``x``, ``y``), sent by a session's worker thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_faultline import point

CHECK_PERIOD_S = 10.0  # check_clients runs this often (clock time)
CLIENT_TIMEOUT_S = 60.0  # a client whose admin file is older than this is disconnected
POLL_S = 0.05  # blocked reads wake this often to see whether the daemon is stopping
BOUND_S = 5.0  # every wait, in the daemon and in its tests, is bounded by this
CLIENT_DISCONNECT = "CLIENT_DISCONNECT"

log = logging.getLogger("proofd")
Message = dict[str, Any]


class UseAfterRelease(RuntimeError):
    """A released ``Response`` was used. In xproofd this was a dangling pointer: a crash."""


def encode(message: Message) -> bytes:
    return json.dumps(message, sort_keys=True).encode() + b"\n"


class LineReader:
    """Reads one JSON message per line from a socket; ``None`` at EOF, on a reset, or on stop."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock, self.stop, self._buffer = sock, stop, b""

    def read(self) -> Message | None:
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                if self.stop.is_set():
                    return None
                continue
            except OSError:  # reset by the peer, or closed under us
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: Message = json.loads(line)
        return message


class Response:
    """Where replies and results for one connection go (``XrdProofdResponse``).

    Responses are pooled. A released one is poisoned (``sock = None``): using it raises
    ``UseAfterRelease``. Once the next connection acquires it, it works again, for *that*
    connection: a stale reference then writes into someone else's link, as a dangling pointer
    writes into reallocated memory.
    """

    def __init__(self, rid: int) -> None:
        self.rid = rid
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self.lock:
            if self.sock is None:
                raise UseAfterRelease(f"response #{self.rid} used after release to send {message}")
            self.sock.sendall(encode(message))


class ResponsePool:
    """Hands out the most recently released ``Response`` first, as an allocator reuses memory."""

    def __init__(self) -> None:
        self._free: list[Response] = []
        self._made = 0
        self._lock = threading.Lock()

    def acquire(self, sock: socket.socket) -> Response:
        with self._lock:
            if self._free:
                response = self._free.pop()
            else:
                self._made += 1
                response = Response(self._made)
        with response.lock:
            response.sock = sock
        return response

    def release(self, response: Response) -> None:
        with response.lock:
            response.sock = None  # poisoned
        with self._lock:
            self._free.append(response)


class ClientIds:
    """One user's client ids (cids): the lowest id neither in use nor in quarantine."""

    quarantine_s = 0.0  # how long a freed cid is kept back for its owner to reconnect

    def __init__(self) -> None:
        self.in_use: set[int] = set()
        self.freed_at: dict[int, float] = {}

    def new(self) -> int:
        now, cid = time.monotonic(), 0
        while cid in self.in_use or now - self.freed_at.get(cid, -1e18) < self.quarantine_s:
            cid += 1
        return self._take(cid)

    def reclaim(self, cid: int) -> bool:
        """Give ``cid`` back to the client that had it, if nobody else holds it now."""
        return cid not in self.in_use and self._take(cid) == cid

    def free(self, cid: int) -> None:
        self.in_use.discard(cid)
        self.freed_at[cid] = time.monotonic()

    def _take(self, cid: int) -> int:
        self.in_use.add(cid)
        self.freed_at.pop(cid, None)
        return cid


@dataclass(eq=False)
class Client:
    """A logged-in client (``XrdProofdClient``): its references go stale when its link drops."""

    user: str
    cid: int
    admin_path: Path
    protocol: BaseProtocol | None
    response: Response | None


class Session:
    """A session's worker thread (a ``proofserv``): computes tasks and sends each result back
    through its client's ``Response``; while the client is away, it keeps the results."""

    def __init__(self, daemon: BaseDaemon, sid: int, client: Client) -> None:
        self.daemon, self.sid, self.user, self.cid = daemon, sid, client.user, client.cid
        self.protocol, self.response = client.protocol, client.response
        self.busy = 0  # tasks queued or running: a busy session is not idle
        self.done = 0
        self.killed = False
        self.reconnect_deadline: float | None = None
        self.outbox: list[Message] = []  # results not yet written to any link
        self.sent: list[Message] = []  # results written to a link: the client may not have them
        self.lock = threading.Lock()
        self.inbox: queue.Queue[int | None] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name=f"session-{sid}", daemon=True)

    def submit(self, x: int) -> None:
        with self.lock:
            self.busy += 1
        self.inbox.put(x)

    def _work(self) -> None:
        while (x := self.inbox.get()) is not None:
            result = {"op": "result", "user": self.user, "cid": self.cid, "sid": self.sid}
            result.update(x=x, y=x * x)
            point("proofd.session.result", sid=self.sid, x=x)
            try:
                with self.lock:
                    if not self.killed:
                        self._send(result)
            except UseAfterRelease as exc:
                self.daemon.report(exc, f"session {self.sid}")
            finally:
                with self.lock:
                    self.busy -= 1
                    self.done += 1
                self.daemon.changed()

    def _send(self, message: Message) -> None:  # the caller holds self.lock
        if self.response is not None:
            try:
                self.response.send(message)
                self.sent.append(message)
                return
            except OSError:  # the link is gone, its recycle not yet done: keep the result
                pass
        self.outbox.append(message)

    def detach(self) -> None:
        with self.lock:
            self.protocol = self.response = None

    def attach(self, client: Client, received: int) -> None:
        """The client is back, having received the first ``received`` of this session's results:
        send through its new link, starting with what it missed.

        A result written to a link is not a result delivered: the link may drop before the
        client reads it (found by the fault sweep, tests/test_proofd_sweep.py). So the client
        says how many it has, and everything after those is sent again."""
        with self.lock:
            self.protocol, self.response = client.protocol, client.response
            self.reconnect_deadline = None
            missed = self.sent[received:] + self.outbox
            del self.sent[received:]
            self.outbox = []
            for message in missed:
                self._send(message)

    def kill(self) -> None:
        with self.lock:
            self.killed = True
        self.inbox.put(None)


class SessionManager:
    """Every session (``XrdProofdProofServMgr``): started by clients, killed without one."""

    def __init__(self, daemon: BaseDaemon) -> None:
        self.daemon = daemon
        self.sessions: dict[int, Session] = {}
        self.killed: list[int] = []
        self.all: list[Session] = []
        self.lock = threading.Lock()
        self._sids = itertools.count(1)

    def start(self, client: Client) -> Session:
        with self.lock:
            session = Session(self.daemon, next(self._sids), client)
            self.sessions[session.sid] = session
            self.all.append(session)
        session.thread.start()
        return session

    def of(self, user: str, cid: int) -> list[Session]:
        with self.lock:
            return [s for s in self.sessions.values() if (s.user, s.cid) == (user, cid)]

    def using(self, protocol: BaseProtocol) -> list[Session]:
        with self.lock:
            return [s for s in self.sessions.values() if s.protocol is protocol]

    def set_reconnect_time(self, client: Client, seconds: float) -> None:
        """Give the client ``seconds`` to come back before its busy sessions, and those with
        results not yet delivered, are killed."""
        for session in self.of(client.user, client.cid):
            # Busy, or holding results it could not send (its send failed on the dropped link
            # just before this recycle: found by the fault sweep, tests/test_proofd_sweep.py).
            if session.busy or session.outbox:
                session.reconnect_deadline = time.monotonic() + seconds

    def check_active_sessions(self) -> None:
        """Kill every session without a valid client (no response) whose reconnect time, if
        any, has passed."""
        now = time.monotonic()
        with self.lock:
            doomed = [
                s
                for s in self.sessions.values()
                if s.response is None and (s.reconnect_deadline or 0) <= now
            ]
            for session in doomed:
                del self.sessions[session.sid]
                self.killed.append(session.sid)
        for session in doomed:
            log.warning("session %d of %s has no client: killed", session.sid, session.user)
            session.kill()
        self.daemon.changed()

    def stop(self) -> list[threading.Thread]:
        """Kill every live session; return the threads of all sessions ever started."""
        with self.lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            session.kill()
        return [s.thread for s in self.all]


class BaseProtocol:
    """One client link (``XrdProofdProtocol``): its thread reads requests and, when the link
    drops (EOF, reset, or closed by ``check_clients``), calls ``recycle()``."""

    def __init__(self, daemon: BaseDaemon, sock: socket.socket) -> None:
        self.daemon, self.sock = daemon, sock
        self.client: Client | None = None
        self.response = daemon.pool.acquire(sock)
        self.thread = threading.Thread(target=self._serve, name=f"link-{sock.fileno()}")

    def recycle(self) -> None:
        """The link dropped: remove every reference to it, then ``reset()``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Release this link's ``Response`` for the next connection, free the cid, close."""
        self.daemon.pool.release(self.response)
        if self.client is not None:
            self.daemon.manager.free_cid(self.client)
        self.sock.close()

    def close_link(self) -> None:
        """Drop the link from the daemon's side; the link's thread then recycles it."""
        with contextlib.suppress(OSError):  # already closed
            self.sock.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        reader = LineReader(self.sock, self.daemon.stopping)
        try:
            while (message := reader.read()) is not None:
                self.handle(message)
        except Exception as exc:
            self.daemon.report(exc, "link")
        finally:
            self.recycle()
            self.daemon.changed(recycled=1)

    def handle(self, message: Message) -> None:
        op, manager = message.get("op"), self.daemon.manager
        if op == "login":
            received = {int(sid): n for sid, n in message.get("received", {}).items()}
            self.client, resumed = manager.login(
                self, message["user"], message.get("cid"), received
            )
            self.response.send({"op": "hello", "cid": self.client.cid, "resumed": resumed})
        elif self.client is None:
            self.response.send({"op": "error", "error": f"{op!r} before login"})
        else:
            manager.touch(self.client)
            if op == "start":
                session = self.daemon.sessions.start(self.client)
                self.response.send({"op": "started", "sid": session.sid})
            elif op == "task":
                target = self.daemon.sessions.sessions.get(message["sid"])
                if target is None:
                    self.response.send({"op": "error", "error": f"no session {message['sid']}"})
                else:
                    target.submit(message["x"])
            elif op == "ping":
                self.response.send({"op": "pong"})
        cid = None if self.client is None else self.client.cid
        point("proofd.request", op=op, user=message.get("user"), cid=cid)


class BaseClientManager:
    """Clients by (user, cid), their admin files and cids, and the client cron thread that
    processes messages such as CLIENT_DISCONNECT (``XrdProofdClientMgr``)."""

    ids_class: type[ClientIds] = ClientIds

    def __init__(self, daemon: BaseDaemon) -> None:
        self.daemon = daemon
        self.clients: dict[tuple[str, int], Client] = {}
        self.ids: dict[str, ClientIds] = {}
        self.handled = 0  # cron messages processed
        self.lock = threading.Lock()
        self.inbox: queue.Queue[tuple[str, BaseProtocol] | None] = queue.Queue()
        self.cron = threading.Thread(target=self._cron, name="client-cron")

    def login(
        self,
        protocol: BaseProtocol,
        user: str,
        cid: int | None,
        received: dict[int, int] | None = None,
    ) -> tuple[Client, bool]:
        """A new client, or, if ``cid`` is a disconnected client of ``user`` whose admin path
        is still there, that client back on its new link (its sessions resume, sending again
        every result after the first ``received[sid]`` the client has of each)."""
        with self.lock:
            ids = self.ids.setdefault(user, self.ids_class())
            client = None if cid is None else self.clients.get((user, cid))
            away = client is not None and client.protocol is None
            if client and away and client.admin_path.exists() and ids.reclaim(client.cid):
                client.protocol, client.response = protocol, protocol.response
                (client.admin_path / "disconnected").unlink(missing_ok=True)
                for session in self.daemon.sessions.of(user, client.cid):
                    session.attach(client, (received or {}).get(session.sid, 0))
                self.touch(client)
                return client, True
            new_cid = ids.new()
            path = self.daemon.admin_root / user / str(new_cid)
            client = Client(user, new_cid, path, protocol, protocol.response)
            self.clients[(user, new_cid)] = client
            path.mkdir(parents=True, exist_ok=True)
            self.touch(client)
            return client, False

    def touch(self, client: Client) -> None:
        """Mark the client alive: its admin file's time is now (the clock's now)."""
        now = time.time()
        try:
            (client.admin_path / "alive").touch()
            os.utime(client.admin_path / "alive", (now, now))
        except OSError:
            pass  # the admin path is gone (the buggy check removed it)

    def free_cid(self, client: Client) -> None:
        with self.lock:
            self.ids[client.user].free(client.cid)

    def using(self, protocol: BaseProtocol) -> list[Client]:
        return [c for c in self.clients.values() if c.protocol is protocol]

    def remove_references(self, protocol: BaseProtocol) -> None:
        """Forget ``protocol`` and its ``Response`` everywhere. The caller holds ``self.lock``."""
        for client in self.using(protocol):
            client.protocol = client.response = None
        for session in self.daemon.sessions.using(protocol):
            session.detach()

    def check_clients(self) -> None:
        """Disconnect every client whose admin file is older than ``CLIENT_TIMEOUT_S``."""
        now = time.time()
        with self.lock:
            idle = [(c, c.protocol) for c in self.clients.values() if c.protocol is not None]
        for client, protocol in idle:
            try:
                age = now - (client.admin_path / "alive").stat().st_mtime
            except OSError:
                age = float("inf")
            if protocol is not None and age > CLIENT_TIMEOUT_S:
                log.warning("client %s/%d silent: disconnecting", client.user, client.cid)
                self.drop_idle(client, protocol)

    def drop_idle(self, client: Client, protocol: BaseProtocol) -> None:
        protocol.close_link()

    def post(self, kind: str, protocol: BaseProtocol) -> None:
        self.inbox.put((kind, protocol))

    def handle_disconnect(self, protocol: BaseProtocol) -> None:
        """The cron's handler of CLIENT_DISCONNECT for ``protocol``."""
        raise NotImplementedError

    def _cron(self) -> None:
        while (message := self.inbox.get()) is not None:
            kind, protocol = message
            try:
                if kind == CLIENT_DISCONNECT:
                    self.handle_disconnect(protocol)
            except Exception as exc:
                self.daemon.report(exc, "client cron")
            finally:
                self.handled += 1
                self.daemon.changed()


class BaseDaemon:
    """The session daemon: accepts links on 127.0.0.1, runs the client cron and, every
    ``CHECK_PERIOD_S`` of clock time, ``check_clients()`` and ``check_active_sessions()``."""

    protocol_class: type[BaseProtocol]
    manager_class: type[BaseClientManager]

    def __init__(self, admin_root: Path) -> None:
        self.admin_root = admin_root
        self.pool = ResponsePool()
        self.manager = self.manager_class(self)
        self.sessions = SessionManager(self)
        self.links: list[BaseProtocol] = []
        self.errors: list[str] = []  # what the error handler caught: in xproofd, crashes
        self.recycled = 0
        self.stopping = threading.Event()
        self._changed = threading.Condition()
        self._timer_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._listener: socket.socket | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)  # the port is known after start()
        self._acceptor: threading.Thread | None = None

    def start(self) -> BaseDaemon:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.address = self._listener.getsockname()[:2]
        self._acceptor = threading.Thread(
            target=self._accept, args=(self._listener,), name="acceptor"
        )
        self._acceptor.start()
        self.manager.cron.start()
        self._schedule_check()
        return self

    def stop(self) -> None:
        """Stop every thread and close every socket (bounded); raise if a thread hangs."""
        self.stopping.set()
        with self._timer_lock:
            timer = self._timer
        if timer is not None:
            timer.cancel()
        acceptor = [self._acceptor] if self._acceptor else []
        _join(acceptor)
        if self._listener is not None:
            self._listener.close()
        for link in list(self.links):
            link.close_link()
        _join([link.thread for link in self.links])  # their recycles post to the cron
        self.manager.inbox.put(None)
        _join([self.manager.cron, *self.sessions.stop(), *([timer] if timer else [])])
        threads = [*acceptor, self.manager.cron, *(s.thread for s in self.sessions.all)]
        hung = [t.name for t in threads + [link.thread for link in self.links] if t.is_alive()]
        if hung:
            raise RuntimeError(f"daemon threads did not stop within {BOUND_S}s: {hung}")

    def __enter__(self) -> BaseDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def report(self, exc: BaseException, where: str) -> None:
        """The daemon's error handler: record what would have crashed xproofd."""
        log.error("%s: %s", where, exc)
        with self._changed:
            self.errors.append(f"{where}: {exc}")
            self._changed.notify_all()

    def changed(self, recycled: int = 0) -> None:
        """Wake ``wait_until``: the daemon's state changed (``recycled`` links more)."""
        with self._changed:
            self.recycled += recycled
            self._changed.notify_all()

    def wait_until(self, predicate: Callable[[], object], timeout: float = BOUND_S) -> bool:
        """Wait (bounded) until ``predicate()`` holds; it is checked after every change."""
        with self._changed:
            return bool(self._changed.wait_for(predicate, timeout))

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(POLL_S)
            link = self.protocol_class(self, conn)
            self.links.append(link)
            link.thread.start()

    def _schedule_check(self) -> None:
        with self._timer_lock:
            if self.stopping.is_set():
                return
            # threading.Timer looked up at call time: under the test's clock it is a clock timer.
            self._timer = threading.Timer(CHECK_PERIOD_S, self._check)
            self._timer.daemon = True
            self._timer.start()

    def _check(self) -> None:
        self.manager.check_clients()
        self.sessions.check_active_sessions()
        self._schedule_check()


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        if thread.ident is not None:  # started
            thread.join(BOUND_S)
