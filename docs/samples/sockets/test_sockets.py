"""Short reads, stalled and closing peers: the correct reader survives, the naive one fails."""

from __future__ import annotations

import socket
import struct

import pytest
from messages import EXPECTED, ProtocolError, read_correct, read_naive
from sessions import Session, answer, ask


@pytest.mark.faultline("partial_read", max_bytes=3)
def test_reads_a_whole_message(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"?")
        assert read_correct(sock) == EXPECTED


@pytest.mark.xfail(raises=struct.error, strict=True, reason="a short read cuts the header")
@pytest.mark.faultline("partial_read", max_bytes=3)
def test_naive_reader_reads_a_whole_message(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"?")
        assert read_naive(sock) == EXPECTED


@pytest.mark.faultline("timeout_mid_message", after_bytes=10)
def test_a_stalled_peer_is_an_error(server):
    with socket.create_connection(server.address, timeout=0.2) as sock:
        sock.sendall(b"?")
        with pytest.raises(ProtocolError, match="timed out after 6 of"):
            read_correct(sock)


@pytest.mark.faultline("truncated_message", after_bytes=100)
def test_a_closed_connection_is_an_error(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"?")
        with pytest.raises(ProtocolError, match="connection closed after 96 of"):
            read_correct(sock)


def test_only_the_cache_is_slow(faultline, start_server):
    cache_server, db_server = start_server(), start_server()
    faultline.sockets.short_reads(1, peer=cache_server.address)  # or "127.0.0.1:6379"
    with socket.create_connection(db_server.address, timeout=5) as db:
        db.sendall(b"?")
        assert read_naive(db) == EXPECTED  # whole reads from the database
    with socket.create_connection(cache_server.address, timeout=5) as cache:
        cache.sendall(b"?")
        with pytest.raises(struct.error):
            read_naive(cache)  # one-byte reads from the cache


def test_short_reads_then_whole_reads(faultline, server):
    with socket.create_connection(server.address, timeout=5) as sock:
        with faultline.sockets.short_reads(1):
            sock.sendall(b"?")
            assert read_correct(sock) == EXPECTED
        sock.sendall(b"?")
        assert read_naive(sock) == EXPECTED  # whole reads again


@pytest.fixture
def session_server(start_server):
    session = Session()
    return start_server(lambda request: answer(session, request))


@pytest.mark.faultline("disconnect_mid_recycle", at="sessions:Session.recycle")
def test_server_survives_a_client_vanishing(session_server):
    assert ask(session_server.address, b"1") == b""  # dropped during the recycle
    assert ask(session_server.address, b"2") == b"ok 2"  # and the server still serves
