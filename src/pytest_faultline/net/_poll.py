"""The readiness poller under the embedded proxy's loop: ``select.epoll`` used directly where
there is one (Linux), the ``selectors`` module elsewhere.

Why not ``selectors`` everywhere: its ``select()`` builds a key object list in Python on every
wake-up, and each microsecond the proxy's thread spends between ``epoll_wait`` and the next
``send`` is added to every round trip through the proxy (the woken peer also waits for the GIL
while the loop runs Python). Measured on a 2-core machine: a minimal ``epoll`` relay in Python
adds the same round trip as one in C, the ``selectors`` loop several microseconds more.
"""

from __future__ import annotations

import select
import selectors
import socket

__all__ = ["READ", "WRITE", "Poller"]

EPOLL = hasattr(select, "epoll")
READ = select.EPOLLIN if EPOLL else selectors.EVENT_READ
WRITE = select.EPOLLOUT if EPOLL else selectors.EVENT_WRITE
BOTH = READ | WRITE


class Poller:
    """Sockets registered for ``READ`` / ``WRITE`` with a data object each; :meth:`poll` gives
    ``(fd, events)`` pairs, :attr:`entries` maps a registered fd to ``(data, sock, events)``.

    An event other than plain ``READ`` (an error, a hang-up, ``WRITE``) goes through
    :meth:`events`, which reports it as ``selectors`` would: as readiness for whatever the socket
    is registered for, so the read or write that follows sees the error.
    """

    def __init__(self) -> None:
        self.entries: dict[int, tuple[object, socket.socket, int]] = {}
        self._epoll = select.epoll() if EPOLL else None
        self._selector = None if EPOLL else selectors.DefaultSelector()

    def register(self, sock: socket.socket, events: int, data: object) -> None:
        fd = sock.fileno()
        if self._epoll is not None:
            self._epoll.register(fd, events)
        else:
            assert self._selector is not None
            self._selector.register(fd, events)
        self.entries[fd] = (data, sock, events)

    def modify(self, sock: socket.socket, events: int, data: object) -> None:
        fd = sock.fileno()
        if self._epoll is not None:
            self._epoll.modify(fd, events)
        else:
            assert self._selector is not None
            self._selector.modify(fd, events)
        self.entries[fd] = (data, sock, events)

    def unregister(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self.entries.pop(fd, None) is None:
            return
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            assert self._selector is not None
            self._selector.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Ready ``(fd, events)`` pairs, waiting at most ``timeout`` seconds."""
        if self._epoll is not None:
            try:
                return self._epoll.poll(timeout)
            except InterruptedError:
                return []
        assert self._selector is not None
        return [(key.fd, events) for key, events in self._selector.select(timeout)]

    @staticmethod
    def events(raw: int, registered: int) -> int:
        """``raw`` epoll events as ``READ`` / ``WRITE`` readiness of a socket registered for
        ``registered`` (errors and hang-ups wake both, as in ``selectors``)."""
        if not EPOLL:
            return raw & registered
        events = 0
        if raw & ~READ:
            events |= WRITE
        if raw & ~WRITE:
            events |= READ
        return events & registered

    def close(self) -> None:
        self.entries.clear()
        if self._epoll is not None:
            self._epoll.close()
        if self._selector is not None:
            self._selector.close()
