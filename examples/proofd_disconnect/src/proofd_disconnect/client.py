"""A user's client of the session daemon (the same for both implementations)."""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
from collections.abc import Callable

from .core import BOUND_S, POLL_S, LineReader, Message, encode


class ProofClient:
    """Logs in as ``user`` (or back in with its old cid), starts sessions, submits tasks and
    collects results. A result addressed to another user or cid lands in ``foreign``: the
    daemon wrote someone else's result into this link."""

    def __init__(self, address: tuple[str, int], user: str) -> None:
        self.address, self.user = address, user
        self.cid: int | None = None
        self.results: list[Message] = []
        self.foreign: list[Message] = []
        self.closed = True
        self._replies: list[Message] = []
        self._changed = threading.Condition()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def login(self, cid: int | None = None) -> Message:
        """Connect and log in; with ``cid``, ask for that client back (a reconnect), saying
        how many results of each session we have: the daemon sends the rest again."""
        self._connect()
        with self._changed:
            received = collections.Counter(str(r["sid"]) for r in self.results)
        message = {"op": "login", "user": self.user, "cid": cid, "received": dict(received)}
        hello = self._request(message, "hello")
        self.cid = hello["cid"]
        return hello

    def reconnect(self) -> Message:
        """The link dropped: connect again and log in with the cid we had."""
        self.close()
        return self.login(self.cid)

    def start_session(self) -> int:
        sid: int = self._request({"op": "start"}, "started")["sid"]
        return sid

    def submit(self, sid: int, x: int) -> None:
        self._send({"op": "task", "sid": sid, "x": x})

    def ping(self) -> None:
        """A round trip: whatever the daemon sent before the pong has arrived."""
        self._request({"op": "ping"}, "pong")

    def wait_until(self, predicate: Callable[[], object], timeout: float = BOUND_S) -> bool:
        with self._changed:
            return bool(self._changed.wait_for(predicate, timeout))

    def drop(self) -> None:
        """Vanish as a crashed or cut-off client does: the daemon sees a reset, not a goodbye."""
        self.close(reset=True)

    def close(self, reset: bool = False) -> None:
        self._stop.set()
        sock, thread = self._sock, self._thread
        if sock is not None and not reset:
            with contextlib.suppress(OSError):  # the daemon closed it first
                sock.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(BOUND_S)
        if sock is not None:
            if reset:  # close with SO_LINGER 0: the kernel sends RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self._sock = self._thread = None

    def _connect(self) -> None:
        if self._sock is not None:
            self.close()
        self._stop = threading.Event()
        self._sock = socket.create_connection(self.address, timeout=BOUND_S)
        self._sock.settimeout(POLL_S)
        self.closed = False
        self._thread = threading.Thread(
            target=self._read, args=(self._sock, self._stop), name=f"client-{self.user}"
        )
        self._thread.start()

    def _send(self, message: Message) -> None:
        if self._sock is None:
            raise ConnectionError(f"{self.user} is not connected")
        self._sock.sendall(encode(message))

    def _request(self, message: Message, reply: str) -> Message:
        self._send(message)

        def answered() -> bool:
            return self.closed or any(r["op"] in (reply, "error") for r in self._replies)

        with self._changed:
            if not self._changed.wait_for(answered, BOUND_S):
                raise TimeoutError(f"{self.user}: no {reply!r} within {BOUND_S}s")
            if not any(r["op"] in (reply, "error") for r in self._replies):
                raise ConnectionError(f"{self.user}: the link closed before {reply!r} came")
            answer = next(r for r in self._replies if r["op"] in (reply, "error"))
            self._replies.remove(answer)
        if answer["op"] == "error":
            raise RuntimeError(f"{self.user}: daemon refused {message}: {answer['error']}")
        return answer

    def _read(self, sock: socket.socket, stop: threading.Event) -> None:
        reader = LineReader(sock, stop)
        while (message := reader.read()) is not None:
            with self._changed:
                if message["op"] != "result":
                    self._replies.append(message)
                elif (message["user"], message["cid"]) == (self.user, self.cid):
                    self.results.append(message)
                else:
                    self.foreign.append(message)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()
