"""Length-prefixed messages (a 4-byte big-endian length, then the payload), two readers and a
small loopback server for the socket-fault samples."""

from __future__ import annotations

import socket
import struct
import threading

HEADER = struct.Struct("!I")
BOUND_S = 5.0
EXPECTED = bytes(range(200))  # the payload every sample server sends


class ProtocolError(Exception):
    """A message could not be read whole."""


def frame(payload):
    return HEADER.pack(len(payload)) + payload


def read_naive(sock):
    """The bug: assumes each recv returns every byte it asked for."""
    (size,) = HEADER.unpack(sock.recv(HEADER.size))
    return sock.recv(size)


def recv_exactly(sock, size):
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            raise ProtocolError(f"timed out after {len(data)} of {size} bytes") from None
        if not chunk:
            raise ProtocolError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def read_correct(sock):
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    return recv_exactly(sock, size)


class Server:
    """Serves on 127.0.0.1, one connection at a time: each byte received is answered with
    ``respond(byte)``. Closed (and its thread joined) by ``close()``."""

    def __init__(self, respond):
        self._respond = respond
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.address = self._listener.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sample-server")
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(BOUND_S)
                try:
                    while request := conn.recv(1):
                        conn.sendall(self._respond(request))
                except OSError:
                    pass  # the client went away (or a fault dropped it): serve the next one

    def close(self):
        self._stop.set()
        self._thread.join(BOUND_S)
        self._listener.close()
