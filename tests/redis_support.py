"""A private ``redis-server`` on 127.0.0.1 for the tests that drive real redis clients.

The fixture starts Debian's (or any) ``redis-server`` on a free loopback port with no
persistence, and skips with a reason that says how to enable the tests when it is not on PATH.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

START_BOUND_S = 10.0  # redis-server answers PING within this, or the tests skip
STOP_BOUND_S = 5.0
NO_REDIS = (
    "redis-server is not on PATH: install it to run the real-server tests "
    "(Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis); "
    ".ci/run installs it"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_server() -> Iterator[tuple[str, int]]:
    """A private redis-server on 127.0.0.1 (free port, no persistence), stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(NO_REDIS)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_BOUND_S
        while not answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"redis-server ({binary}) did not start on 127.0.0.1:{port}")
            time.sleep(0.02)  # polling a starting process: there is no event to wait on
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_BOUND_S)
