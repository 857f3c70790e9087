"""The proxy contract: every behaviour here holds for the embedded proxy, for the Toxiproxy
backend talking to ``faultline serve``, and for the Toxiproxy backend talking to a real
Toxiproxy (skipped unless one is available)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_faultline.net.protocol import (
    Proxy,
    ProxyConflict,
    ProxyServerError,
    Toxic,
    ToxicBadRequest,
)
from pytest_faultline.net.toxiproxy import ToxiproxyClient

from .proxy_support import (
    BOUND_S,
    Target,
    closed_port,
    connect,
    echo,
    embedded_target,
    faultline_serve,
    read_until_eof,
    real_toxiproxy,
    recorder,
    remote_target,
    sender,
    upstream,
)

TARGETS = ["embedded", "faultline-serve", "toxiproxy-server"]


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    with faultline_serve() as server:
        yield server.url


@pytest.fixture(scope="module")
def toxiproxy_url() -> Iterator[str]:
    with real_toxiproxy() as url:
        yield url


# Each target's server is a module fixture: it outlives every test's proxies, which the
# cleanup below deletes while the server still answers.
SERVER_FIXTURES = {"faultline-serve": "serve_url", "toxiproxy-server": "toxiproxy_url"}


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, faultline: object) -> Iterator[Target]:
    cleanup: list[Callable[[], object]] = []
    try:
        if request.param == "embedded":
            yield embedded_target(faultline, cleanup)
        else:
            url = request.getfixturevalue(SERVER_FIXTURES[request.param])
            yield remote_target(request.param, ToxiproxyClient(url), cleanup)
    finally:
        for fn in reversed(cleanup):
            fn()


def round_trip(conn: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    conn.sendall(payload)
    got = b""
    while len(got) < len(payload):
        part = conn.recv(65536)
        assert part, "connection closed during a round trip"
        got += part
    assert got == payload
    return time.monotonic() - start


# -- clean relay ------------------------------------------------------------------------------


def test_bytes_pass_exactly_both_ways(target: Target) -> None:
    payload = os.urandom(3 << 20)
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        assert isinstance(proxy, Proxy)  # both backends satisfy the protocol
        assert isinstance(proxy.add_toxic("latency", latency=0), Toxic)
        with connect(proxy) as conn:
            sending = threading.Thread(target=conn.sendall, args=(payload,))
            sending.start()
            got = bytearray()
            while len(got) < len(payload):
                part = conn.recv(1 << 20)
                assert part, "connection closed before every byte came back"
                got += part
            sending.join(BOUND_S)
            assert got == payload


# What a client's half-close (shutdown(SHUT_WR): "I am done sending") does, per backend. The
# embedded proxy (and so faultline serve) passes it on as a half-close, as a plain TCP path
# does: the server sees EOF and its answer still arrives. A real Toxiproxy closes both
# directions when either side ends, so the answer is lost.
HALF_CLOSE_KEEPS_THE_REPLY = {"embedded": True, "faultline-serve": True, "toxiproxy-server": False}


def test_half_close_per_backend(target: Target) -> None:
    payload = os.urandom(256 << 10)

    def reply_at_eof(conn: socket.socket) -> None:
        data = read_until_eof(conn)  # the whole request, ended by the client's half-close
        conn.sendall(data)

    with upstream(reply_at_eof) as server:
        proxy = target.proxy(server.address)
        with connect(proxy) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            try:
                got = read_until_eof(conn)
            except ConnectionResetError:
                got = b""
    if HALF_CLOSE_KEEPS_THE_REPLY[target.kind]:
        assert got == payload
    else:
        assert got != payload


def test_upstream_refused_client_sees_eof(target: Target) -> None:
    proxy = target.proxy(closed_port())
    with connect(proxy) as conn:
        assert conn.recv(1) == b""


# -- toxics -----------------------------------------------------------------------------------


def test_latency_delays_each_chunk_without_serialising_them(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("latency", latency=300)
        with connect(proxy) as conn:
            assert round_trip(conn) >= 0.25
            # Five messages in flight at once: the delays overlap, so it takes about one
            # latency, not five (a wide bound: 4 latencies).
            start = time.monotonic()
            for i in range(5):
                conn.sendall(b"%d" % i)
            got = b""
            while len(got) < 5:
                got += conn.recv(16)
            assert got == b"01234"
            assert time.monotonic() - start < 1.2


def test_toxic_added_updated_and_removed_on_a_live_connection(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        with connect(proxy) as conn:
            round_trip(conn)
            toxic = proxy.add_toxic("latency", latency=1, name="slow")
            toxic.update(latency=400)
            assert toxic.attributes["latency"] == 400
            assert round_trip(conn) >= 0.35
            toxic.remove()
            assert round_trip(conn) < 0.35
            assert proxy.toxics() == []


def test_bandwidth_limits_the_rate_in_kb_per_second(target: Target) -> None:
    payload = os.urandom(50_000)
    with upstream(sender(payload)) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("bandwidth", rate=100)  # 100 KB/s: 50 KB take 0.5 s
        with connect(proxy) as conn:
            start = time.monotonic()
            assert read_until_eof(conn) == payload
            assert time.monotonic() - start >= 0.4


def test_slow_close_delays_the_eof_not_the_data(target: Target) -> None:
    with upstream(sender(b"bye")) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("slow_close", delay=400)
        with connect(proxy) as conn:
            start = time.monotonic()
            assert conn.recv(16) == b"bye"
            assert conn.recv(16) == b""
            assert time.monotonic() - start >= 0.35


def test_timeout_drops_data_then_closes(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("timeout", timeout=300)
        with connect(proxy) as conn:
            start = time.monotonic()
            conn.sendall(b"ping")
            assert conn.recv(16) == b""  # no data, then EOF
            assert time.monotonic() - start >= 0.25


def test_timeout_zero_holds_until_removed_then_closes(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        toxic = proxy.add_toxic("timeout", timeout=0)
        with connect(proxy) as conn:
            conn.sendall(b"ping")
            conn.settimeout(0.5)
            with pytest.raises(TimeoutError):  # held: a naive reader waits forever
                conn.recv(16)
            conn.settimeout(BOUND_S)
            toxic.remove()
            assert conn.recv(16) == b""


def test_reset_peer_is_a_reset_and_limit_data_is_an_eof(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        toxic = proxy.add_toxic("reset_peer", timeout=0)
        with connect(proxy) as conn:
            conn.sendall(b"ping")
            with pytest.raises(ConnectionResetError):
                read_until_eof(conn)
        toxic.remove()
        proxy.add_toxic("limit_data", bytes=3)
        with connect(proxy) as conn:
            conn.sendall(b"ping")
            assert read_until_eof(conn) == b"pin"


def test_limit_data_truncates_the_crossing_chunk_then_closes(target: Target) -> None:
    with upstream(sender(bytes(range(100)))) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("limit_data", bytes=10)
        with connect(proxy) as conn:
            assert read_until_eof(conn) == bytes(range(10))


def test_limit_data_upstream_truncates_what_the_server_gets(target: Target) -> None:
    received: list[bytes] = []
    done = threading.Event()
    with upstream(recorder(received, done)) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("limit_data", stream="upstream", bytes=5)
        with connect(proxy) as conn:
            conn.sendall(b"0123456789")
            assert read_until_eof(conn) == b""
        assert done.wait(BOUND_S)
    assert received == [b"01234"]


def read_frame_naive(conn: socket.socket) -> bytes:
    (size,) = struct.unpack("!I", conn.recv(4))
    return conn.recv(size)


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = conn.recv(size - len(data))
        if not part:
            raise EOFError(f"peer closed after {len(data)} of {size} bytes")
        data += part
    return data


def read_frame(conn: socket.socket) -> bytes:
    (size,) = struct.unpack("!I", read_exactly(conn, 4))
    return read_exactly(conn, size)


def test_slicer_breaks_naive_framing_and_correct_framing_survives(target: Target) -> None:
    body = os.urandom(2000)
    frame = struct.pack("!I", len(body)) + body
    with upstream(sender(frame + frame)) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("slicer", average_size=64, size_variation=32, delay=500)
        with connect(proxy) as conn:
            assert read_frame_naive(conn) != body  # the naive reader gets a fragment
        with connect(proxy) as conn:
            assert read_frame(conn) == body
            assert read_frame(conn) == body


def test_truncated_message_is_an_error_for_the_correct_reader(target: Target) -> None:
    body = os.urandom(100)
    with upstream(sender(struct.pack("!I", len(body)) + body)) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("limit_data", bytes=50)
        with connect(proxy) as conn:
            assert len(read_frame_naive(conn)) == 46  # takes half a message for a whole one
        with connect(proxy) as conn, pytest.raises(EOFError, match="46 of 100"):
            read_frame(conn)


def test_toxicity_zero_never_applies_and_one_always_does(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        never = proxy.add_toxic("reset_peer", toxicity=0.0, name="never")
        for _ in range(5):
            with connect(proxy) as conn:
                round_trip(conn)
        never.remove()
        proxy.add_toxic("reset_peer", toxicity=1.0, name="always")
        for _ in range(3):
            with connect(proxy) as conn:
                conn.sendall(b"ping")
                with pytest.raises(ConnectionResetError):
                    read_until_eof(conn)


# -- down and reset ---------------------------------------------------------------------------


def test_down_closes_connections_and_refuses_new_ones(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        with connect(proxy) as conn:
            round_trip(conn)
            with proxy.down():
                assert not proxy.enabled
                assert conn.recv(16) == b""
                with pytest.raises(ConnectionRefusedError):
                    connect(proxy).close()
            assert proxy.enabled
        with connect(proxy) as conn:
            round_trip(conn)


def test_reset_connections_kills_live_ones_only(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        with connect(proxy) as conn:
            round_trip(conn)
            proxy.reset_connections()
            try:
                got: bytes | None = conn.recv(16)
            except ConnectionResetError:
                got = None
            # The embedded proxy resets; Toxiproxy has no reset, so its backend closes (EOF).
            assert got is None if target.kind == "embedded" else got in (None, b"")
        with connect(proxy) as conn:
            round_trip(conn)


# -- API errors -------------------------------------------------------------------------------


def test_duplicate_proxy_name_is_a_conflict(target: Target) -> None:
    with upstream(echo) as server:
        target.proxy(server.address, name=f"dup_{os.getpid()}")
        with pytest.raises(ProxyConflict, match="already exists"):
            target.proxy(server.address, name=f"dup_{os.getpid()}")


def test_duplicate_toxic_name_is_a_conflict(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        proxy.add_toxic("latency", latency=1)
        with pytest.raises(ProxyConflict, match="already exists"):
            proxy.add_toxic("latency", latency=2)


def test_port_in_use_is_a_clear_error(target: Target) -> None:
    with upstream(echo) as server, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ProxyServerError, match="already in use"):
            target.proxy(server.address, listen=taken.getsockname())


def test_bad_toxic_type_and_stream_are_bad_requests(target: Target) -> None:
    with upstream(echo) as server:
        proxy = target.proxy(server.address)
        with pytest.raises(ToxicBadRequest, match="invalid toxic type"):
            proxy.add_toxic("lag", latency=1)
        with pytest.raises(ToxicBadRequest, match="stream was invalid"):
            proxy.add_toxic("latency", stream="sideways", latency=1)
        assert proxy.toxics() == []
