"""The embedded proxy's fast path (no toxic: ``recv_into``/``send``, then ``splice()`` through a
pipe) hands a live connection over to the toxic pipeline, and back, without losing or reordering
a byte, whatever is in flight at that moment."""

from __future__ import annotations

import socket
import struct
import threading
from functools import partial

import pytest

from pytest_faultline.net import _pump
from pytest_faultline.net.proxy import EmbeddedProxy

from .proxy_support import BOUND_S, connect, echo, upstream

WORDS = 1 << 21  # 8 MiB of 4-byte counters: a lost or moved byte changes the payload


def numbered(words: int) -> bytes:
    return struct.pack(f">{words}I", *range(words))


def first_difference(got: bytes, want: bytes) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    return f"{len(got)} of {len(want)} bytes, first difference at {at}"


def reached_mark(got: bytearray, mark: int) -> bool:
    return len(got) >= mark


def pipe_state(proxy: EmbeddedProxy) -> tuple[int, bool]:
    """(bytes in the upstream splice pipe, the upstream direction is blocked) of the proxy's
    only connection, read on the proxy's thread."""
    loop = proxy._loop

    def read() -> tuple[int, bool]:
        conns = list(loop._conns.values())
        return (conns[0].up.piped, conns[0].up.blocked) if conns else (0, False)

    result: tuple[int, bool] = loop.call(read)
    return result


@pytest.mark.skipif(not _pump.SPLICE, reason="os.splice() is Linux-only (Python 3.10+)")
def test_toxic_added_while_bytes_sit_in_the_splice_pipe_keeps_them_first() -> None:
    payload = numbered(WORDS)
    release = threading.Event()
    received: list[bytes] = []
    done = threading.Event()

    def gated_recorder(conn: socket.socket) -> None:
        # Reads nothing until released: the proxy's pipe and the socket buffers fill up.
        release.wait(BOUND_S)
        data = bytearray()
        while part := conn.recv(1 << 20):
            data += part
        received.append(bytes(data))
        done.set()

    with upstream(gated_recorder) as server, EmbeddedProxy(server.address) as proxy:
        conn = connect(proxy)
        writer = threading.Thread(target=conn.sendall, args=(payload,), daemon=True)
        writer.start()
        try:
            # No event tells when the pipe holds bytes; each look is a round trip to the proxy's
            # thread, bounded by a deadline.
            deadline = threading.Event()
            timer = threading.Timer(BOUND_S, deadline.set)
            timer.start()
            try:
                while not deadline.is_set():
                    piped, blocked = pipe_state(proxy)
                    if piped and blocked:
                        break
            finally:
                timer.cancel()
            assert piped, "the upstream direction never held bytes in its splice pipe"
            assert blocked, "the upstream direction never stalled on its destination"
            proxy.add_toxic("slicer", stream="upstream", average_size=1000, size_variation=500)
            release.set()
            writer.join(BOUND_S)
            assert not writer.is_alive()
            conn.shutdown(socket.SHUT_WR)
            assert done.wait(BOUND_S), "the upstream never saw the end of the stream"
        finally:
            release.set()
            conn.close()
    assert received[0] == payload, first_difference(received[0], payload)


@pytest.mark.parametrize(
    ("toxic", "attributes"),
    [
        ("slicer", {"average_size": 700, "size_variation": 300}),
        ("latency", {"latency": 2}),
        ("bandwidth", {"rate": 200_000}),
    ],
)
def test_toxics_switched_on_and_off_during_a_bulk_echo_keep_every_byte(
    toxic: str, attributes: dict[str, int]
) -> None:
    payload = numbered(WORDS)
    got = bytearray()
    progress = threading.Condition()

    def reader(conn: socket.socket) -> None:
        while part := conn.recv(1 << 20):
            with progress:
                got.extend(part)
                progress.notify_all()

    switches = 8
    with upstream(echo) as server, EmbeddedProxy(server.address) as proxy:
        conn = connect(proxy)
        writer = threading.Thread(target=conn.sendall, args=(payload,), daemon=True)
        reading = threading.Thread(target=reader, args=(conn,), daemon=True)
        reading.start()
        writer.start()
        try:
            for step in range(1, switches + 1):
                # Switch at evenly spread points of the transfer, while bytes are in flight.
                mark = step * len(payload) // (switches + 2)
                with progress:
                    reached = progress.wait_for(partial(reached_mark, got, mark), BOUND_S)
                assert reached, first_difference(bytes(got), payload)
                if step % 2:
                    for stream in ("upstream", "downstream"):
                        proxy.add_toxic(toxic, stream=stream, name=f"t-{stream}", **attributes)
                else:
                    proxy.reset_toxics()
            proxy.reset_toxics()
            writer.join(BOUND_S)
            assert not writer.is_alive()
            conn.shutdown(socket.SHUT_WR)
            reading.join(BOUND_S)
            assert not reading.is_alive()
        finally:
            conn.close()
    assert bytes(got) == payload, first_difference(bytes(got), payload)
