"""The examples of docs/howto/net-proxy.rst, run as tests (the page includes them from here)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from pytest_faultline import point
from pytest_faultline.actions import Disconnect
from pytest_faultline.controller import Faultline

from .proxy_support import BOUND_S, echo, upstream


class KVClient:
    """A tiny client of a length-prefixed echo service; the code under test."""

    def __init__(self, address: tuple[str, int], *, retry: bool) -> None:
        self.address = address
        self.retry = retry
        self.sock = socket.create_connection(address, timeout=BOUND_S)

    def call(self, payload: bytes) -> bytes:
        try:
            return self._call(payload)
        except (ConnectionError, EOFError):
            if not self.retry:
                raise
            self.sock.close()  # the fix: drop the dead connection, open a new one, try again
            self.sock = socket.create_connection(self.address, timeout=BOUND_S)
            return self._call(payload)

    def _call(self, payload: bytes) -> bytes:
        point("kv.before_send")  # a fault point: the test can strike here
        self.sock.sendall(struct.pack("!I", len(payload)) + payload)
        (size,) = struct.unpack("!I", self._exactly(4))
        return self._exactly(size)

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = self.sock.recv(size - len(data))
            if not part:
                raise EOFError(f"server closed after {len(data)} of {size} bytes")
            data += part
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def kv_server() -> Iterator[tuple[str, int]]:
    with upstream(echo) as server:
        yield server.address


# start: drop-at-point
@pytest.mark.parametrize("retry", [False, True], ids=["naive", "fixed"])
def test_survives_a_drop_just_before_a_send(
    faultline: Faultline, kv_server: tuple[str, int], retry: bool
) -> None:
    proxy = faultline.proxy(kv_server)
    client = KVClient(proxy.listen, retry=retry)
    try:
        assert client.call(b"first") == b"first"
        # The next time the client is about to send, every connection through the test's
        # proxies is reset.
        faultline.arm("kv.before_send", Disconnect(), times=1)
        if retry:
            assert client.call(b"second") == b"second"
        else:
            with pytest.raises(ConnectionError):
                client.call(b"second")
    finally:
        client.close()


# end: drop-at-point


# start: mid-message
def test_a_reply_cut_short_is_an_error_not_a_message(
    faultline: Faultline, kv_server: tuple[str, int]
) -> None:
    proxy = faultline.proxy(kv_server)
    # The 4-byte header and 3 bytes of the 10-byte body get through, then the proxy closes.
    proxy.add_toxic("limit_data", bytes=7)
    with socket.create_connection(proxy.listen, timeout=BOUND_S) as naive:
        naive.sendall(struct.pack("!I", 10) + b"0123456789")
        (size,) = struct.unpack("!I", naive.recv(4))
        assert naive.recv(size) == b"012"  # the naive reader takes a fragment for the reply
    client = KVClient(proxy.listen, retry=False)
    try:
        with pytest.raises(EOFError, match="3 of 10"):  # the correct reader reports it
            client.call(b"0123456789")
    finally:
        client.close()


# end: mid-message


# start: down
def test_reports_an_outage_instead_of_hanging(
    faultline: Faultline, kv_server: tuple[str, int]
) -> None:
    proxy = faultline.proxy(kv_server)
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        KVClient(proxy.listen, retry=True)
    client = KVClient(proxy.listen, retry=True)  # back up after the block
    try:
        assert client.call(b"ok") == b"ok"
    finally:
        client.close()


# end: down
