"""Socket-level faults over real loopback TCP: naive readers fail under each fault, correct ones
survive it."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from pytest_faultline import point
from pytest_faultline.actions import Disconnect
from pytest_faultline.controller import Faultline
from pytest_faultline.errors import FaultlineError
from pytest_faultline.net.sockets import exempt

from .sockets_support import (
    BOUND_S,
    LoopbackServer,
    ProtocolError,
    connect,
    frame,
    outcome,
    read_correct,
    read_lenient,
    read_naive,
    recv_exactly,
    sender,
)

PAYLOAD = bytes(range(256)) * 2  # 512 bytes, so a cut anywhere shows


def fetch(server: LoopbackServer, reader, *, timeout: float | None = BOUND_S):  # type: ignore[no-untyped-def]
    """Connect, wait until the server has sent everything, then read one message."""
    with connect(server.address, timeout) as sock:
        assert server.served.wait(BOUND_S)
        server.served.clear()
        return outcome(lambda: reader(sock))


# -- the control: without a fault the naive reader works on loopback ----------------------------


def test_naive_reader_works_without_faults() -> None:
    with LoopbackServer(sender(PAYLOAD)) as server:
        assert fetch(server, read_naive) == PAYLOAD


# -- short reads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("max_bytes", [1, 7, 300])
def test_short_reads_break_a_single_recv(faultline: Faultline, max_bytes: int) -> None:
    handle = faultline.sockets.short_reads(max_bytes)
    with LoopbackServer(sender(PAYLOAD)) as server:
        got = fetch(server, read_naive)
    assert got != PAYLOAD
    assert handle.fired >= 1
    assert any(e.kind == "short-read" for e in faultline.events)


@pytest.mark.parametrize("max_bytes", [1, 7, 300])
def test_short_reads_are_survived_by_a_reading_loop(faultline: Faultline, max_bytes: int) -> None:
    handle = faultline.sockets.short_reads(max_bytes)
    with LoopbackServer(sender(PAYLOAD, b"second")) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)  # all of it has arrived: every cut is the fault's
        assert read_correct(sock) == PAYLOAD
        assert read_correct(sock) == b"second"
    assert handle.fired >= 1


def test_short_reads_never_exceed_max_bytes(faultline: Faultline) -> None:
    faultline.sockets.short_reads(5)
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)
        sizes = []
        while chunk := sock.recv(4096):
            sizes.append(len(chunk))
    assert sum(sizes) == len(frame(PAYLOAD))
    assert max(sizes) <= 5
    assert len(set(sizes)) > 1  # the split points vary, drawn from the seed


def split_points(seed: int, max_bytes: int = 8) -> list[int]:
    fl = Faultline(seed=seed, nodeid="tests/net/test_sockets.py::replay")
    try:
        fl.sockets.short_reads(max_bytes)
        with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
            assert server.served.wait(BOUND_S)
            sizes = []
            while chunk := sock.recv(4096):
                sizes.append(len(chunk))
        return sizes
    finally:
        fl.close()


def test_the_same_seed_gives_the_same_split_points() -> None:
    first = split_points(1234)
    assert split_points(1234) == first
    assert split_points(4321) != first


def test_recv_into_recvfrom_and_recvmsg_are_cut_too(faultline: Faultline) -> None:
    faultline.sockets.short_reads(3)
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)
        buf = bytearray(64)
        assert sock.recv_into(buf) <= 3
        data, _addr = sock.recvfrom(64)
        assert 1 <= len(data) <= 3
        nbytes, _addr = sock.recvfrom_into(buf, 64)
        assert 1 <= nbytes <= 3
        data, _anc, _flags, _addr = sock.recvmsg(64)
        assert 1 <= len(data) <= 3


def test_recv_into_keeps_its_own_argument_errors(faultline: Faultline) -> None:
    faultline.sockets.short_reads(3)
    with (
        LoopbackServer(sender(PAYLOAD)) as server,
        connect(server.address) as sock,
        pytest.raises(ValueError, match="buffer too small"),
    ):
        sock.recv_into(bytearray(4), 8)


def test_a_peek_is_cut_but_consumes_nothing(faultline: Faultline) -> None:
    faultline.sockets.short_reads(2)
    with LoopbackServer(sender(b"hello")) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)
        peeked = sock.recv(64, socket.MSG_PEEK)
        assert 1 <= len(peeked) <= 2
        assert recv_exactly(sock, 4 + 5) == frame(b"hello")


def test_makefile_buffered_reader_survives_raw_reader_does_not(faultline: Faultline) -> None:
    faultline.sockets.short_reads(3)
    with LoopbackServer(sender(PAYLOAD), connections=2) as server:
        with connect(server.address) as sock, sock.makefile("rb") as stream:
            (size,) = struct.unpack("!I", stream.read(4))  # BufferedReader.read loops
            assert stream.read(size) == PAYLOAD
        with connect(server.address) as sock, sock.makefile("rb", buffering=0) as raw:
            header = raw.read(4)  # one recv_into: at most 3 bytes
            assert len(header) < 4


def test_asyncio_streams_readexactly_survives_read_does_not(faultline: Faultline) -> None:
    import asyncio

    faultline.sockets.short_reads(5)

    async def fetch_both(address: tuple[str, int]) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(*address)
        try:
            header = await asyncio.wait_for(reader.readexactly(4), BOUND_S)
            (size,) = struct.unpack("!I", header)
            whole = await asyncio.wait_for(reader.readexactly(size), BOUND_S)
            header = await asyncio.wait_for(reader.readexactly(4), BOUND_S)
            (size,) = struct.unpack("!I", header)
            naive = await asyncio.wait_for(reader.read(size), BOUND_S)  # one chunk, assumed whole
            return whole, naive
        finally:
            writer.close()
            await writer.wait_closed()

    with LoopbackServer(sender(PAYLOAD, PAYLOAD)) as server:
        whole, naive = asyncio.run(fetch_both(server.address))
    assert whole == PAYLOAD
    assert 1 <= len(naive) < len(PAYLOAD)  # what the transport had buffered, not the message


# -- stalls --------------------------------------------------------------------------------------


def test_stall_makes_a_lenient_reader_return_a_truncated_message(faultline: Faultline) -> None:
    faultline.sockets.stall_after(4 + 10)
    with LoopbackServer(sender(PAYLOAD)) as server:
        got = fetch(server, read_lenient, timeout=0.2)
    assert got == PAYLOAD[:10]  # the incident: a timeout read as the end of a message


def test_stall_is_reported_by_a_correct_reader(faultline: Faultline) -> None:
    handle = faultline.sockets.stall_after(4 + 10)
    with LoopbackServer(sender(PAYLOAD)) as server:
        got = fetch(server, read_correct, timeout=0.2)
    assert isinstance(got, ProtocolError)
    assert str(got) == "timed out after 10 of 512 bytes"
    assert handle.fired == 1
    kinds = [e.kind.value for e in faultline.events]
    assert kinds.count("stall") == 1
    assert "timeout" in kinds


def test_stall_on_a_blocking_socket_ends_at_the_bound_and_says_so(faultline: Faultline) -> None:
    faultline.sockets.stall_after(2, bound=0.2)
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address, None) as sock:
        assert sock.recv(64) == frame(PAYLOAD)[:2]
        with pytest.raises(TimeoutError, match="faultline stall bound") as info:
            sock.recv(64)
    assert "set a timeout on the socket" in str(info.value).lower()


def test_stall_on_a_non_blocking_socket_would_block(faultline: Faultline) -> None:
    faultline.sockets.stall_after(0)
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(64)


def test_removing_a_stall_lets_the_stalled_read_go_on(faultline: Faultline) -> None:
    handle = faultline.sockets.stall_after(4)
    results: list[object] = []
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        reader = threading.Thread(
            target=lambda: results.append(outcome(lambda: read_correct(sock)))
        )
        reader.start()
        try:
            assert handle.wait(1, timeout=BOUND_S)  # the reader is stalled now
            handle.remove()
        finally:
            reader.join(BOUND_S)
        assert not reader.is_alive()
    assert results == [PAYLOAD]


def test_the_end_of_the_test_wakes_a_stalled_read() -> None:
    fl = Faultline(seed=1, nodeid="wake")
    results: list[object] = []
    try:
        handle = fl.sockets.stall_after(0, bound=60.0)
        with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address, None) as sock:
            reader = threading.Thread(target=lambda: results.append(outcome(lambda: sock.recv(4))))
            reader.start()
            assert handle.wait(1, timeout=BOUND_S)
            fl.close()  # well before the 60 s bound
            reader.join(BOUND_S)
            assert not reader.is_alive()
    finally:
        fl.close()
    assert isinstance(results[0], TimeoutError)
    assert "when the test ended" in str(results[0])


def test_asyncio_reader_under_a_stall_times_out_instead_of_hanging(faultline: Faultline) -> None:
    import asyncio

    faultline.sockets.stall_after(4 + 10)

    async def read_message(address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        try:
            (size,) = struct.unpack("!I", await reader.readexactly(4))
            return await asyncio.wait_for(reader.readexactly(size), 0.3)
        finally:
            writer.close()
            await writer.wait_closed()

    with LoopbackServer(sender(PAYLOAD)) as server, pytest.raises(asyncio.TimeoutError):
        asyncio.run(read_message(server.address))
    assert [e.kind.value for e in faultline.events].count("stall") == 1


# -- closes and resets ---------------------------------------------------------------------------


def test_close_after_makes_a_lenient_reader_return_truncated_data(faultline: Faultline) -> None:
    faultline.sockets.close_after(4 + 100)
    with LoopbackServer(sender(PAYLOAD)) as server:
        assert fetch(server, read_lenient) == PAYLOAD[:100]


def test_close_after_is_reported_by_a_correct_reader(faultline: Faultline) -> None:
    handle = faultline.sockets.close_after(4 + 100)
    with LoopbackServer(sender(PAYLOAD)) as server:
        got = fetch(server, read_correct)
    assert isinstance(got, ProtocolError)
    assert str(got) == "connection closed after 100 of 512 bytes"
    assert handle.fired == 1
    assert [e.kind.value for e in faultline.events].count("eof") == 1


def test_close_after_ends_the_connection_for_the_peer_too(faultline: Faultline) -> None:
    seen: list[bytes] = []

    def wait_for_close(conn: socket.socket) -> None:
        conn.sendall(frame(PAYLOAD))
        seen.append(conn.recv(64))  # the client never sends: only the end of the connection

    with LoopbackServer(wait_for_close) as server:
        faultline.sockets.close_after(10, peer=server.address)
        with connect(server.address) as sock:
            assert recv_exactly(sock, 10) == frame(PAYLOAD)[:10]
            assert sock.recv(64) == b""
            assert server.served.wait(BOUND_S)
            with pytest.raises(BrokenPipeError):
                sock.sendall(b"x")
    assert seen == [b""]


def resuming_server(*messages: bytes):  # type: ignore[no-untyped-def]
    """Each client sends one byte, the index of the first message it wants, then gets the rest."""

    def serve(conn: socket.socket) -> None:
        start = conn.recv(1)
        if start:
            conn.sendall(b"".join(frame(m) for m in messages[start[0] :]))

    return serve


def fetch_all_naive(address: tuple[str, int], count: int) -> list[bytes]:
    with connect(address) as sock:
        sock.sendall(bytes([0]))
        return [read_correct(sock) for _ in range(count)]


def fetch_all_resuming(address: tuple[str, int], count: int, attempts: int = 3) -> list[bytes]:
    """Reconnect after a reset or EOF and ask for the first message not yet received whole."""
    got: list[bytes] = []
    for _ in range(attempts):
        try:
            with connect(address) as sock:
                sock.sendall(bytes([len(got)]))
                while len(got) < count:
                    got.append(read_correct(sock))
                return got
        except (ConnectionError, ProtocolError):
            continue
    raise ProtocolError(f"gave up after {attempts} attempts with {len(got)} of {count} messages")


MESSAGES = (b"a" * 40, b"b" * 40, b"c" * 40)


def test_reset_after_crashes_a_reader_that_does_not_expect_it(faultline: Faultline) -> None:
    with LoopbackServer(resuming_server(*MESSAGES)) as server:
        handle = faultline.sockets.reset_after(100, peer=server.address)
        with pytest.raises(ConnectionResetError, match="reset_after"):
            fetch_all_naive(server.address, 3)
    assert handle.fired == 1
    assert [e.kind.value for e in faultline.events].count("reset") == 1


def test_reset_after_is_survived_by_a_reader_that_reconnects(faultline: Faultline) -> None:
    with LoopbackServer(resuming_server(*MESSAGES), connections=2) as server:
        handle = faultline.sockets.reset_after(100, peer=server.address)
        assert fetch_all_resuming(server.address, 3) == list(MESSAGES)
    assert handle.fired == 1  # the second connection needed only 44 bytes


def test_reads_after_a_reset_return_eof(faultline: Faultline) -> None:
    faultline.sockets.reset_after(3)
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert recv_exactly(sock, 3) == frame(PAYLOAD)[:3]
        with pytest.raises(ConnectionResetError):
            sock.recv(64)
        assert sock.recv(64) == b""


def test_concurrent_readers_each_get_their_own_cuts(faultline: Faultline) -> None:
    faultline.sockets.short_reads(2)
    messages = [bytes([n]) * (50 + n) for n in range(4)]
    results: dict[int, object] = {}
    servers = [LoopbackServer(sender(m)) for m in messages]

    def read(n: int) -> None:
        with connect(servers[n].address) as sock:
            results[n] = outcome(lambda: read_correct(sock))

    for server in servers:
        server.__enter__()
    try:
        readers = [threading.Thread(target=read, args=(n,)) for n in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(BOUND_S)
        assert not any(reader.is_alive() for reader in readers)
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    assert results == dict(enumerate(messages))


def test_ipv6_peers(faultline: Faultline) -> None:
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with listener:
        port = listener.getsockname()[1]
        handle = faultline.sockets.short_reads(1, peer=f"[::1]:{port}")
        with socket.create_connection(("::1", port), timeout=BOUND_S) as sock:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"hello")
                assert sock.recv(64) == b"h"
    assert handle.peer == f"[::1]:{port}"


# -- scoping -------------------------------------------------------------------------------------


def test_a_fault_on_one_peer_leaves_other_connections_alone(faultline: Faultline) -> None:
    with LoopbackServer(sender(PAYLOAD)) as faulty, LoopbackServer(sender(PAYLOAD)) as healthy:
        handle = faultline.sockets.short_reads(1, peer=faulty.peer)
        assert fetch(healthy, read_naive) == PAYLOAD
        assert handle.fired == 0
        assert isinstance(fetch(faulty, read_naive), struct.error)
    assert handle.fired >= 1
    names = {e.name for e in faultline.events if e.kind == "short-read"}
    assert names == {f"socket connected-1 to {faulty.peer}"}


def test_peer_as_a_tuple_and_by_host_name(faultline: Faultline) -> None:
    with LoopbackServer(sender(PAYLOAD), connections=2) as server:
        by_tuple = faultline.sockets.close_after(4, peer=server.address)
        assert isinstance(fetch(server, read_correct), ProtocolError)
        by_tuple.remove()
        by_name = faultline.sockets.close_after(4, peer=f"localhost:{server.address[1]}")
        got = fetch(server, read_correct)
        assert isinstance(got, ProtocolError)
    assert by_tuple.fired == 1
    assert by_name.fired == 1


def test_an_exempt_socket_is_left_alone(faultline: Faultline) -> None:
    faultline.sockets.short_reads(1)
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)
        assert len(sock.recv(2)) == 1  # in use and faulted, then exempted
        exempt(sock)
        assert len(sock.recv(64)) == 64
        assert faultline.sockets.disconnect_all() == 0  # the server's end has closed already


def test_unix_sockets_are_not_faulted(faultline: Faultline) -> None:
    faultline.sockets.short_reads(1)
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"whole message")
        assert left.recv(64) == b"whole message"


def test_a_removed_fault_and_a_with_block(faultline: Faultline) -> None:
    with LoopbackServer(sender(PAYLOAD), connections=2) as server:
        with faultline.sockets.short_reads(1) as handle:
            assert isinstance(fetch(server, read_naive), struct.error)
        assert not handle.active
        assert faultline.sockets.faults == []
        assert fetch(server, read_naive) == PAYLOAD


# -- disconnects ---------------------------------------------------------------------------------


def test_disconnect_all_drops_both_ends_and_allows_reconnecting(faultline: Faultline) -> None:
    sockets = faultline.sockets  # connections are tracked from its first use
    dropped = threading.Event()
    seen: list[object] = []

    def hold(conn: socket.socket) -> None:
        conn.sendall(b"ready")
        if dropped.wait(BOUND_S):
            seen.append(conn.recv(64))
            seen.append(outcome(lambda: conn.send(b"late") and b""))

    with LoopbackServer(hold, connections=2) as server:
        with connect(server.address) as sock:
            assert recv_exactly(sock, 5) == b"ready"
            assert sockets.disconnect_all() == 2  # the client end and the server end
            dropped.set()
            assert sock.recv(64) == b""
            with pytest.raises(BrokenPipeError):
                sock.sendall(b"more")
            assert server.served.wait(BOUND_S)
        server.served.clear()
        dropped.clear()
        with connect(server.address) as again:  # the listener still accepts
            assert recv_exactly(again, 5) == b"ready"
            again.shutdown(socket.SHUT_WR)
            dropped.set()
            assert server.served.wait(BOUND_S)
    assert seen[0] == b""
    assert isinstance(seen[1], BrokenPipeError)
    assert seen[2:] == [b"", b""]  # the new connection was left alone
    assert [e.kind.value for e in faultline.events].count("disconnect") == 2


def test_the_disconnect_action_drops_connections(faultline: Faultline) -> None:
    faultline.sockets  # noqa: B018  - connections are tracked from its first use
    arming = faultline.arm("demo.recycle", Disconnect())
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert server.served.wait(BOUND_S)
        point("demo.recycle")
        assert sock.recv(64) == b""
    assert arming.fired == 1


def test_a_disconnect_ends_a_stalled_read_with_eof(faultline: Faultline) -> None:
    stall = faultline.sockets.stall_after(4)
    results: list[object] = []
    with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
        assert recv_exactly(sock, 4) == frame(PAYLOAD)[:4]
        reader = threading.Thread(target=lambda: results.append(outcome(lambda: sock.recv(64))))
        reader.start()
        try:
            assert stall.wait(1, timeout=BOUND_S)
            assert faultline.sockets.disconnect_all() >= 1
        finally:
            reader.join(BOUND_S)
        assert not reader.is_alive()
    assert results == [b""]


# -- the patches ---------------------------------------------------------------------------------


def test_patches_are_undone_when_the_test_ends() -> None:
    before = dict(socket.socket.__dict__)
    fl = Faultline(seed=3, nodeid="undo")
    fl.sockets.short_reads(1)
    assert socket.socket.__dict__["recv"] is not before.get("recv")
    fl.close()
    assert dict(socket.socket.__dict__) == before
    with LoopbackServer(sender(PAYLOAD)) as server:
        assert fetch(server, read_naive) == PAYLOAD


def test_nested_controllers_chain_and_unwind(faultline: Faultline) -> None:
    faultline.sockets.short_reads(1)
    outer_recv = socket.socket.__dict__["recv"]
    inner = Faultline(seed=9, nodeid="inner")
    try:
        inner.sockets.close_after(4 + 3)
        with LoopbackServer(sender(PAYLOAD)) as server, connect(server.address) as sock:
            assert server.served.wait(BOUND_S)
            assert len(sock.recv(64)) == 1  # the outer fault, through the inner patch
            assert isinstance(outcome(lambda: read_correct(sock)), ProtocolError)  # the inner
    finally:
        inner.close()
    assert socket.socket.__dict__["recv"] is outer_recv


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.short_reads(0), "short_reads(max_bytes) must be a whole number >= 1, got 0"),
        (lambda s: s.stall_after(-1), "stall_after(nbytes) must be a whole number >= 0, got -1"),
        (lambda s: s.close_after(1.5), "close_after(nbytes) must be a whole number >= 0, got 1.5"),
        (
            lambda s: s.reset_after(True),
            "reset_after(nbytes) must be a whole number >= 0, got True",
        ),
        (lambda s: s.stall_after(1, bound=0), "stall_after(bound) must be seconds > 0, got 0"),
        (
            lambda s: s.short_reads(1, peer="localhost"),
            "cannot read peer 'localhost': it has no ':port' at the end; give peer",
        ),
        (
            lambda s: s.short_reads(1, peer=8080),
            "cannot read peer 8080: it is neither 'host:port' nor a (host, port) pair; "
            "give peer as 'host:port'",
        ),
        (
            lambda s: s.short_reads(1, peer="h:0"),
            "cannot read peer 'h:0': the port 0 is not a whole number from 1 to 65535",
        ),
        (
            lambda s: s.short_reads(1, peer="no-such-host.invalid:80"),
            "peer 'no-such-host.invalid:80': host 'no-such-host.invalid' does not resolve",
        ),
    ],
)
def test_bad_arguments_say_what_to_fix(faultline: Faultline, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FaultlineError) as info:
        call(faultline.sockets)
    assert str(info.value).startswith(message)
