"""Real socket I/O under the controlled loop: taken in at points of the schedule (aio/io.py).

The server is a real threaded TCP server outside the loop (a counter with GET, SET and INCR
over a line protocol), so every reply really travels through the kernel and arrives when it
arrives. Two tasks each open a connection and add one to the counter: with GET then SET a
schedule that holds one task's reply loses an update; INCR survives every schedule; and the
failing schedule replays identically, whatever the kernel's timing.
"""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from pytest_faultline.controller import Faultline

RUNS = 200
Body = Callable[[], Awaitable[None]]


class _Counter(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: CounterServer = self.server  # type: ignore[assignment]
        for line in self.rfile:
            verb, _, arg = line.decode().strip().partition(" ")
            with server.lock:
                if verb == "SET":
                    server.value = int(arg)
                elif verb == "INCR":
                    server.value += 1
                reply = server.value
            self.wfile.write(f"{reply}\n".encode())


class CounterServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counter)
        self.lock = threading.Lock()
        self.value = 0


@pytest.fixture(scope="module")
def counter_server() -> Iterator[tuple[str, int]]:
    server = CounterServer()
    thread = threading.Thread(target=server.serve_forever, name="counter-server", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def bump_twice(address: tuple[str, int], atomic: bool) -> Body:
    async def body() -> None:
        async def call(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
        ) -> int:
            writer.write(f"{line}\n".encode())
            await writer.drain()
            return int(await reader.readline())

        reader, writer = await asyncio.open_connection(*address)
        try:
            await call(reader, writer, "SET 0")

            async def bump() -> None:
                r, w = await asyncio.open_connection(*address)
                try:
                    if atomic:
                        await call(r, w, "INCR")
                    else:
                        value = await call(r, w, "GET")
                        await call(r, w, f"SET {value + 1}")
                finally:
                    w.close()

            await asyncio.gather(bump(), bump())
            assert await call(reader, writer, "GET") == 2
        finally:
            writer.close()

    return body


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="GET then SET loses an update")
def test_get_then_set_over_real_sockets_loses_an_update(
    faultline: Faultline, counter_server: tuple[str, int]
) -> None:
    faultline.explore(bump_twice(counter_server, atomic=False), runs=RUNS)


def test_incr_over_real_sockets_survives_every_schedule(
    faultline: Faultline, counter_server: tuple[str, int]
) -> None:
    exploration = faultline.explore(bump_twice(counter_server, atomic=True), runs=RUNS)
    assert exploration.passed
    assert exploration.schedules == RUNS


def test_a_schedule_over_real_sockets_replays_exactly(
    faultline: Faultline, counter_server: tuple[str, int]
) -> None:
    body = bump_twice(counter_server, atomic=False)
    found = faultline.explore(body, runs=RUNS, raises=False)
    assert isinstance(found.failure, AssertionError)
    assert found.token is not None
    steps = [(step.thread, step.site) for step in found.steps]
    for _ in range(50):
        again = faultline.replay(body, found.token, raises=False)
        assert isinstance(again.failure, AssertionError)
        assert [(step.thread, step.site) for step in again.steps] == steps
