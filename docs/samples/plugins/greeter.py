"""A tiny server that greets each client with one line, and two ways to read that line."""

from __future__ import annotations

import socket
import threading

GREETING = b"hello from the greeter\n"


class Greeter:
    """Listens on a free loopback port (known only once it runs) and greets every client."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            with conn:
                conn.sendall(GREETING)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


def read_greeting_naive(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return sock.recv(1024)  # assumes one recv returns the whole line


def read_greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            data += chunk
        return data
