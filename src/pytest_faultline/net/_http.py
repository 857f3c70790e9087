"""A small HTTP/1.1 server for ``faultline serve``: one event-loop thread, a bounded pool of
handler threads.

The loop thread owns every socket: it accepts, reads and parses requests (``Content-Length``
or chunked bodies, ``Expect: 100-continue``, keep-alive, pipelining) and writes the answers.
A request reaches a handler thread only once it has arrived whole, so a client that sends
half a request (or nothing) holds a buffer and a connection slot until its read deadline,
never a thread. Limits on the header and body size, per-request read, idle and write
deadlines, and the number of connections are in :class:`Limits`. Errors the HTTP layer
answers itself (400, 408, 413, 417, 431, 501, 505) carry Toxiproxy's JSON error body
``{"error": "...", "status": N}``.

The messages (limits, requests, responses, a connection's parse state) and the parsing of a
request's head and body are in :mod:`._http_message`.

Everything here uses the real primitives from :mod:`.._raw` and exempt sockets, so a test's
thread scheduler, clock or socket faults never reach the server.
"""

from __future__ import annotations

import _thread
import errno
import selectors
import socket
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from .. import _raw
from ..errors import FaultlineError
from ._http_message import (
    BODY,
    BUSY,
    LINGERING,
    WAITING,
    WRITING,
    Handler,
    HTTPConn,
    Limits,
    Refused,
    Request,
    Response,
    error_response,
    json_response,
    parse_head,
    read_body,
)
from .sockets import exempt

__all__ = ["HTTPServer", "Limits", "Request", "Response", "error_response", "json_response"]

READ_CHUNK = 65536
LINGER_S = 2.0  # after an error answer, how long unread input is drained before the close
LOOP_TICK_S = 0.5  # the loop wakes at least this often to expire deadlines


class HTTPServer:
    """Serve ``handler`` on ``(host, port)``; ``start()`` runs the loop on its own thread,
    ``stop()`` closes every connection and ends every thread it started."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        *,
        limits: Limits | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.log = log
        host, port = address
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = exempt(socket.socket(family, socket.SOCK_STREAM))
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(self.limits.backlog)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.address: tuple[str, int] = listener.getsockname()[:2]
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._wake_r, self._wake_w):
            exempt(sock)
            sock.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._accepting = False
        self._resume_at = 0.0
        self._conns: dict[int, HTTPConn] = {}
        self._done: deque[tuple[HTTPConn, Response, bool]] = deque()  # answers from handlers
        self._jobs: deque[tuple[HTTPConn, Request] | None] = deque()
        self._jobs_lock = _raw.allocate_lock()
        self._idle_workers: list[_thread.LockType] = []
        self._workers_finished: list[_raw.RawEvent] = []
        self._stopping = False
        self._loop_finished = _raw.RawEvent()
        self._start_lock = _raw.allocate_lock()
        self._started = False
        self._closed = False
        self.accepted = 0  # connections accepted so far

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop on its own thread. Once: a second call while serving does nothing
        (``with ToxiproxyServer().start() as api`` starts twice), since the loop thread alone
        owns the selector and the connections and a second loop would race it on them."""
        with self._start_lock:
            if self._stopping:
                raise FaultlineError(
                    "this faultline serve server was stopped and cannot start again; "
                    "create a new ToxiproxyServer"
                )
            if self._started:
                return
            self._started = True
            self._set_accepting(True)
            _thread.start_new_thread(self._loop, ())

    def stop(self, bound_s: float = _raw.JOIN_BOUND_S) -> None:
        """Stop the loop and the handler threads (each waited for at most ``bound_s``), then
        close every socket."""
        with self._start_lock:
            self._stopping = True
        if self._started:
            self._wake()
            self._loop_finished.wait(bound_s)
        with self._jobs_lock:
            self._jobs.clear()
            self._jobs.extend([None] * len(self._workers_finished))
            idle, self._idle_workers = self._idle_workers, []
        for waiter in idle:
            waiter.release()
        for finished in self._workers_finished:
            finished.wait(bound_s)
        if not self._started or self._loop_finished.is_set():
            self._close_all()

    def _close_all(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self._conns.values()):
            self._close(conn)
        with suppress(KeyError, ValueError):
            self._sel.unregister(self._listener)
        for sock in (self._listener, self._wake_r, self._wake_w):
            with suppress(OSError):
                sock.close()
        self._sel.close()

    def _wake(self) -> None:
        with suppress(OSError):  # a full wake pipe already wakes the loop
            self._wake_w.send(b"x")

    # -- the loop thread --------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stopping:
                now = _raw.monotonic()
                nearest = min((c.deadline for c in self._conns.values()), default=now + 1e9)
                timeout = min(max(nearest - now, 0.0), LOOP_TICK_S)
                for key, mask in self._sel.select(timeout):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        with suppress(OSError):
                            while self._wake_r.recv(4096):
                                pass
                    else:
                        self._serve(key.data, mask)
                self._take_answers()
                self._expire(_raw.monotonic())
        except Exception as exc:  # pragma: no cover - a bug: say so once, never a traceback
            self._note(f"server loop stopped by a bug: {exc!r}")
        finally:
            if self._stopping:
                self._close_all()
            _raw.forget_dummy_thread()  # a raw thread: leave threading.enumerate() (3.11, 3.12)
            self._loop_finished.set()

    def _serve(self, conn: HTTPConn, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                self._write(conn)
            if mask & selectors.EVENT_READ and conn.sock.fileno() >= 0:
                self._read(conn)
        except Exception as exc:  # a bug costs this connection, not the server
            self._note(f"dropped {conn.client} after an internal error: {exc!r}")
            self._close(conn)

    def _pause(self) -> None:
        """Stop accepting for a tick (or until a connection closes)."""
        self._set_accepting(False)
        self._resume_at = _raw.monotonic() + LOOP_TICK_S

    def _set_accepting(self, on: bool) -> None:
        if on and not self._accepting and not self._stopping:
            self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        elif not on and self._accepting:
            self._sel.unregister(self._listener)
        self._accepting = on and not self._stopping

    def _accept(self) -> None:
        limits = self.limits
        while self._accepting:
            full = len(self._conns) >= limits.max_connections
            victim = self._victim() if full else None
            if full and victim is None:
                self._pause()  # the next ones wait in the listen backlog
                return
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, ...: the loop goes on
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._note(f"cannot accept a connection: {exc.strerror}")
                    self._pause()
                return
            if victim is not None:
                if victim.started:
                    self._note(f"{victim.client} dropped to make room: its request was arriving")
                self._close(victim)
            exempt(sock)
            self.accepted += 1
            sock.setblocking(False)
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = HTTPConn(sock, _peer(peer), _raw.monotonic(), limits.idle_timeout_s)
            self._conns[sock.fileno()] = conn
            self._watch(conn, selectors.EVENT_READ)

    def _victim(self) -> HTTPConn | None:
        """At the connection limit, who makes room for a newcomer: the keep-alive connection
        idle the longest, or else the request that has been arriving the longest (a slow
        sender must not keep everyone else in the backlog until its read deadline)."""
        idle, arriving = [], []
        for conn in self._conns.values():
            if conn.state == WAITING and not conn.started:
                idle.append(conn)
            elif conn.state in (WAITING, BODY):
                arriving.append(conn)
        victims = idle or arriving
        return min(victims, key=lambda c: c.deadline) if victims else None

    def _watch(self, conn: HTTPConn, mask: int) -> None:
        if mask == conn.mask:
            return
        if not conn.mask:
            self._sel.register(conn.sock, mask, conn)
        elif not mask:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _close(self, conn: HTTPConn) -> None:
        if self._conns.pop(conn.sock.fileno(), None) is None:
            return
        if conn.mask:
            with suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)
            conn.mask = 0
        with suppress(OSError):
            conn.sock.close()
        if not self._accepting and len(self._conns) < self.limits.max_connections:
            self._set_accepting(True)

    def _read(self, conn: HTTPConn) -> None:
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client: nothing to answer, nobody to tell
            data = b""
        if not data:
            if conn.state in (WAITING, BODY) and (conn.started or conn.inbuf):
                self._note(f"{conn.client} disconnected in the middle of a request")
            self._close(conn)
            return
        if conn.state == LINGERING:
            return  # input after an error answer is read away
        conn.inbuf += data
        self._advance(conn)

    def _advance(self, conn: HTTPConn) -> None:
        """Parse what has arrived; hand a whole request to a handler thread."""
        try:
            if conn.state == WAITING:
                if not conn.started:
                    stripped = conn.inbuf.lstrip(b"\r\n")  # empty lines before a request
                    if len(stripped) != len(conn.inbuf):
                        del conn.inbuf[: len(conn.inbuf) - len(stripped)]
                    if not conn.inbuf:
                        return
                    conn.started = True
                    conn.deadline = _raw.monotonic() + self.limits.read_timeout_s
                if not parse_head(conn, self.limits):
                    return
                if conn.wants_continue and not conn.inbuf:
                    self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            if conn.state == BODY and read_body(conn, self.limits):
                self._dispatch(conn)
        except Refused as refused:
            self._answer(conn, refused.response, close=True)

    def _dispatch(self, conn: HTTPConn) -> None:
        request = Request(
            conn.method, conn.target, conn.version, conn.headers, bytes(conn.body), conn.client
        )
        conn.state = BUSY
        conn.deadline = float("inf")  # handlers are bounded by the proxies' own call bounds
        conn.body = bytearray()
        self._watch(conn, 0)  # pipelined requests wait in the kernel until this one is answered
        with self._jobs_lock:
            self._jobs.append((conn, request))
            waiter = self._idle_workers.pop() if self._idle_workers else None
            spawn = waiter is None and len(self._workers_finished) < self.limits.workers
            if spawn:
                finished = _raw.RawEvent()
                self._workers_finished.append(finished)
        if waiter is not None:
            waiter.release()
        elif spawn:
            _thread.start_new_thread(self._work, (finished,))

    def _take_answers(self) -> None:
        while self._done:
            conn, response, head_only = self._done.popleft()
            if self._conns.get(conn.sock.fileno()) is conn:
                self._answer(conn, response, close=conn.close_after, head_only=head_only)

    def _answer(
        self, conn: HTTPConn, response: Response, *, close: bool, head_only: bool = False
    ) -> None:
        status = response.status
        lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if status >= 200 and status != 204:
            lines.append(f"Content-Length: {len(response.body)}")
        if close:
            lines.append("Connection: close")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head_only and status >= 200 and status != 204:
            payload += response.body
        conn.close_after = close
        if self.log is not None and conn.method:
            self.log(f'{conn.client} "{conn.method} {conn.target[:200]}" {status}')
        conn.state = WRITING
        conn.deadline = _raw.monotonic() + self.limits.write_timeout_s
        self._send(conn, payload)

    def _send(self, conn: HTTPConn, payload: bytes) -> None:
        conn.outbuf += payload
        self._write(conn)

    def _write(self, conn: HTTPConn) -> None:
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the client went away: nothing more to say to it
                self._close(conn)
                return
            del conn.outbuf[:sent]
        reading = selectors.EVENT_READ if conn.state in (WAITING, BODY, LINGERING) else 0
        if conn.outbuf:
            self._watch(conn, selectors.EVENT_WRITE | reading)
            return
        if conn.state != WRITING:
            self._watch(conn, reading)
            return
        if conn.close_after:
            with suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.state = LINGERING
            conn.deadline = _raw.monotonic() + LINGER_S
            self._watch(conn, selectors.EVENT_READ)
            return
        conn.state, conn.started, conn.method = WAITING, False, ""
        conn.deadline = _raw.monotonic() + self.limits.idle_timeout_s
        self._watch(conn, selectors.EVENT_READ)
        if conn.inbuf:
            self._advance(conn)  # a pipelined request that arrived with the last one

    def _expire(self, now: float) -> None:
        if not self._accepting and now >= self._resume_at:
            self._set_accepting(True)  # someone may make room now, or descriptors are free
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if conn.state in (WAITING, BODY) and conn.started:
                self._note(f"{conn.client} did not send a whole request in time")
                limit = self.limits.read_timeout_s
                timeout = error_response(
                    408, f"request timeout: the request did not arrive whole within {limit:g} s"
                )
                self._answer(conn, timeout, close=True)
            elif conn.state != BUSY:
                self._close(conn)  # idle too long, or the client does not read its answer

    # -- handler threads --------------------------------------------------------------------

    def _work(self, finished: _raw.RawEvent) -> None:
        try:
            while True:
                job = self._next_job()
                if job is None:
                    return
                conn, request = job
                try:
                    response = self.handler(request)
                except Exception as exc:  # a bug in a handler answers 500; the thread goes on
                    self._note(f"internal error on {request.method} {request.target}: {exc!r}")
                    response = error_response(500, f"internal error: {exc!r}")
                self._done.append((conn, response, request.method == "HEAD"))
                self._wake()
        finally:
            _raw.forget_dummy_thread()
            finished.set()

    def _next_job(self) -> tuple[HTTPConn, Request] | None:
        while True:
            with self._jobs_lock:
                if self._jobs:
                    return self._jobs.popleft()
                if self._stopping:
                    return None
                waiter = _raw.allocate_lock()
                waiter.acquire()
                self._idle_workers.append(waiter)
            waiter.acquire()

    def _note(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)  # pragma: no cover - TCP peers are (host, port)
