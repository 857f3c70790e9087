"""A server that recycles its session before each answer: the place incident 000 hurt."""

from __future__ import annotations

import socket

from messages import BOUND_S


class Session:
    def recycle(self):
        """Drop the previous request's state (here: nothing to drop)."""


def answer(session, request):
    session.recycle()
    return b"ok " + request


def ask(address, data):
    """One request on a new connection; b"" if the connection was dropped."""
    with socket.create_connection(address, timeout=BOUND_S) as sock:
        sock.sendall(data)
        try:
            return sock.recv(100)
        except ConnectionResetError:
            return b""
