"""The embedded proxy's deterministic cuts: ``reply_lost``, ``refuse``, toxics on the Nth
connection, and what ``Disconnect`` through a proxy guarantees. Each replays identically:
50 runs with the same seed give the same outcome and the same fault events."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pytest_faultline import EventKind, UnsupportedFault, point
from pytest_faultline.actions import Disconnect
from pytest_faultline.controller import Faultline
from pytest_faultline.errors import ToxicBadRequest
from pytest_faultline.net.proxy import EmbeddedProxy
from pytest_faultline.net.toxiproxy import ToxiproxyClient

from .proxy_support import BOUND_S, Upstream, echo, faultline_serve, upstream

REPLAYS = 50
Outcome = tuple[object, ...]


class Counter:
    """A server that applies ``INCR <id>`` requests (one per line) and answers the new value.
    ``applied`` counts what the server did, whatever the clients saw."""

    def __init__(self) -> None:
        self.applied = 0
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        for line in reader:
            request_id = line.decode().split()[1]
            with self.lock:
                if request_id.startswith("once-") and request_id in self.ids:
                    value = self.applied  # an idempotent request seen before: not applied again
                else:
                    self.applied += 1
                    value = self.applied
                self.ids.append(request_id)
            conn.sendall(b"%d\n" % value)


def incr(address: tuple[str, int], request_id: str, *, retries: int) -> int:
    """One ``INCR`` on a new connection, retried on a connection error up to ``retries``
    times (as redis-py's default retry does)."""
    for attempt in range(retries + 1):
        try:
            with socket.create_connection(address, timeout=BOUND_S) as conn:
                conn.sendall(f"INCR {request_id}\n".encode())
                answer = conn.makefile("rb").readline()
                if not answer:
                    raise ConnectionError("connection closed before the reply")
                return int(answer)
        except ConnectionError:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


@contextmanager
def counter_proxy(
    record: list[tuple[str, str]] | None = None,
) -> Iterator[tuple[Counter, Upstream, EmbeddedProxy]]:
    counter = Counter()
    with (
        upstream(counter.handle) as server,
        EmbeddedProxy(
            server.address,
            name="db",
            record=None
            if record is None
            else lambda kind, name, detail: record.append((str(kind), detail)),
        ) as proxy,
    ):
        yield counter, server, proxy


def replays(run: Callable[[], Outcome]) -> Outcome:
    """Run ``run`` REPLAYS times; every outcome must be the first one."""
    first = run()
    for _ in range(REPLAYS - 1):
        assert run() == first
    return first


# -- reply lost -------------------------------------------------------------------------------


def test_reply_lost_the_server_acted_and_the_client_sees_a_reset() -> None:
    def run() -> Outcome:
        events: list[tuple[str, str]] = []
        with counter_proxy(events) as (counter, _, proxy):
            proxy.add_toxic("reply_lost")
            with pytest.raises(ConnectionResetError):
                incr(proxy.listen, "a", retries=0)
            return counter.applied, tuple(e for e in events if e[0] != "proxy")

    applied, events = replays(run)
    assert applied == 1  # the request reached the server: it was applied
    assert events == (
        (
            "toxic",
            "reply_lost_downstream (reply_lost reset=1, times=1) acts on connection 1 "
            "downstream: reply lost on connection 1: the request reached the server (upstream "
            "offset 0..7), the connection was reset at downstream offset 0 before the reply's "
            "first byte reached the client (2 reply bytes dropped; cut 1 of 1)",
        ),
        (
            "disconnect",
            "connection 1: toxic reply_lost_downstream reset the connection (upstream offset 7, "
            "downstream offset 0)",
        ),
    )


def test_reply_lost_with_reset_0_closes_instead() -> None:
    def run() -> Outcome:
        with counter_proxy() as (counter, _, proxy):
            proxy.add_toxic("reply_lost", reset=0)
            with socket.create_connection(proxy.listen, timeout=BOUND_S) as conn:
                conn.sendall(b"INCR a\n")
                got = conn.recv(64)
            return counter.applied, got

    assert replays(run) == (1, b"")  # applied; the client reads EOF, not a reply


def test_reply_lost_times_counts_per_proxy_and_later_replies_pass() -> None:
    def run() -> Outcome:
        with counter_proxy() as (counter, _, proxy):
            proxy.add_toxic("reply_lost", times=2)
            seen: list[object] = []
            for n in range(4):
                try:
                    seen.append(incr(proxy.listen, f"r{n}", retries=0))
                except ConnectionError as exc:
                    seen.append(type(exc).__name__)
            return counter.applied, tuple(seen)

    assert replays(run) == (4, ("ConnectionResetError", "ConnectionResetError", 3, 4))


def test_reply_lost_on_one_connection_only() -> None:
    def run() -> Outcome:
        with counter_proxy() as (counter, _, proxy):
            proxy.add_toxic("reply_lost", times=0, skip_connections=1, connections=1)
            seen: list[object] = []
            for n in range(3):
                try:
                    seen.append(incr(proxy.listen, f"r{n}", retries=0))
                except ConnectionError as exc:
                    seen.append(type(exc).__name__)
            return counter.applied, tuple(seen)

    assert replays(run) == (3, (1, "ConnectionResetError", 3))


def test_reply_lost_on_a_live_connection_cuts_the_next_reply_only() -> None:
    with counter_proxy() as (counter, _, proxy):
        with socket.create_connection(proxy.listen, timeout=BOUND_S) as conn:
            reader = conn.makefile("rb")
            conn.sendall(b"INCR warm\n")
            assert reader.readline() == b"1\n"  # the handshake-like first exchange passes
            proxy.add_toxic("reply_lost")
            conn.sendall(b"INCR hit\n")
            with pytest.raises(ConnectionResetError):
                reader.readline()
        assert counter.applied == 2


# start: reply-lost
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="a retried INCR applies twice")
def test_naive_retry_applies_the_request_twice() -> None:
    with counter_proxy() as (counter, _, proxy):
        proxy.add_toxic("reply_lost")
        value = incr(proxy.listen, "plain", retries=1)  # the retry gets a reply...
        assert counter.applied == 1, f"applied {counter.applied} times, client saw {value}"


def test_idempotent_retry_survives_a_lost_reply() -> None:
    with counter_proxy() as (counter, _, proxy):
        proxy.add_toxic("reply_lost")
        assert incr(proxy.listen, "once-1", retries=1) == 1  # the server recognised the retry
        assert counter.applied == 1


# end: reply-lost


# -- the Nth connection -------------------------------------------------------------------------


def connection_outcomes(proxy: EmbeddedProxy, count: int) -> tuple[str, ...]:
    seen = []
    for n in range(count):
        try:
            with socket.create_connection(proxy.listen, timeout=BOUND_S) as conn:
                conn.sendall(b"%d" % n)
                seen.append(conn.recv(16).decode() or "eof")
        except ConnectionResetError:  # the reset may come before connect() returns
            seen.append("reset")
    return tuple(seen)


def test_refuse_the_next_connection_the_upstream_never_sees_it() -> None:
    def run() -> Outcome:
        events: list[tuple[str, str]] = []
        with (
            upstream(echo) as server,
            EmbeddedProxy(
                server.address, record=lambda k, n, d: events.append((str(k), d))
            ) as proxy,
        ):
            proxy.add_toxic("refuse", connections=1)
            outcomes = connection_outcomes(proxy, 3)
            accepted = server.accepted
        toxic = tuple(d for k, d in events if k == "toxic")
        return outcomes, accepted, toxic

    outcomes, accepted, toxic = replays(run)
    assert outcomes == ("eof", "1", "2")
    assert accepted == 2  # the refused connection never reached the server
    assert toxic == (
        "refuse_downstream (refuse reset=0, connections=1) acts on connection 1 downstream: "
        "refused connection 1: closed at connect, upstream not contacted",
    )


def test_refuse_with_reset_resets_on_connect() -> None:
    def run() -> Outcome:
        with upstream(echo) as server, EmbeddedProxy(server.address) as proxy:
            proxy.add_toxic("refuse", reset=1, skip_connections=1, connections=2)
            return connection_outcomes(proxy, 4)

    assert replays(run) == ("0", "reset", "reset", "3")


def test_a_toxic_on_the_nth_connection_only() -> None:
    def run() -> Outcome:
        with (
            upstream(echo) as server,
            EmbeddedProxy(server.address) as proxy,
            socket.create_connection(proxy.listen, timeout=BOUND_S) as live,
        ):
            # A connection is new when the proxy accepts it, which may be after connect()
            # returned: one round trip makes this one live before the toxic comes.
            live.sendall(b"hi")
            assert live.recv(16) == b"hi"
            proxy.add_toxic("reset_peer", skip_connections=2, connections=1)
            outcomes = connection_outcomes(proxy, 4)
            live.sendall(b"live")
            return (*outcomes, live.recv(16).decode())

    # The third new connection is reset; the others, and the live one, are untouched.
    assert replays(run) == ("0", "1", "reset", "3", "live")


def test_connections_under_faultline_replay_the_same_events(faultline: Faultline) -> None:
    def run(seed: int) -> tuple[tuple[EventKind, str], ...]:
        controller = Faultline(seed=seed, nodeid="tests/net/cuts")
        try:
            with upstream(echo) as server:
                proxy = controller.proxy(server.address)
                proxy.add_toxic("latency", latency=1, jitter=1, toxicity=0.5, connections=6)
                proxy.add_toxic("refuse", skip_connections=3, connections=1)
                connection_outcomes(proxy, 8)  # type: ignore[arg-type]
            return tuple(
                (e.kind, e.detail)
                for e in controller.events
                if e.kind in (EventKind.TOXIC, EventKind.DISCONNECT)
            )
        finally:
            controller.close()

    first = run(11)
    assert all(run(11) == first for _ in range(REPLAYS - 1))
    assert any("refused connection 4" in detail for _, detail in first)


# -- input checks and the Toxiproxy backend ---------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda p: p.add_toxic("reply_lost", stream="upstream"),
            "a reply_lost toxic cuts the reply, so it acts on stream 'downstream' (the "
            "default); got 'upstream'",
        ),
        (
            lambda p: p.add_toxic("reply_lost", reset=2),
            "attribute 'reset' of a reply_lost toxic is 1 (reset: RST) or 0 (close: EOF), got 2",
        ),
        (
            lambda p: p.add_toxic("latency", connection=3),
            "a latency toxic has no attribute 'connection'; its attributes are latency, jitter, "
            "and any toxic takes skip_connections, connections",
        ),
    ],
)
def test_bad_cut_arguments_say_what_to_fix(
    call: Callable[[EmbeddedProxy], object], message: str
) -> None:
    with (
        upstream(echo) as server,
        EmbeddedProxy(server.address) as proxy,
        pytest.raises(ToxicBadRequest) as info,
    ):
        call(proxy)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("toxic", "attributes", "message"),
    [
        ("reply_lost", {}, "a reply_lost toxic is a fault of the embedded proxy only: "),
        ("refuse", {}, "a refuse toxic is a fault of the embedded proxy only: "),
        (
            "latency",
            {"connections": 1},
            "connections= (a toxic on some connections only) is a fault of the embedded proxy "
            "only: ",
        ),
    ],
)
def test_the_toxiproxy_backend_refuses_cuts_and_names_the_embedded_backend(
    toxic: str, attributes: dict[str, Any], message: str
) -> None:
    with faultline_serve() as api, upstream(echo) as server:
        proxy = ToxiproxyClient(api.url).create_proxy("cut", server.address)
        try:
            with pytest.raises(UnsupportedFault) as info:
                proxy.add_toxic(toxic, **attributes)
            assert proxy.toxics() == []  # nothing was sent to the server
        finally:
            proxy.close()
    assert str(info.value).startswith(message)
    assert "--faultline-backend=embedded" in str(info.value)


# -- Disconnect through a proxy ---------------------------------------------------------------


def test_disconnect_between_requests_fails_the_next_one_and_it_never_reaches_the_server() -> None:
    """What ``Disconnect`` guarantees: when the armed call goes on, every connection through
    the test's proxies has been reset, so nothing sent afterwards on them reaches the server.
    (Whether a reply already on its way reached the client is a race: see ``reply_lost``.)"""

    def run() -> Outcome:
        controller = Faultline(seed=5, nodeid="tests/net/disconnect")
        counter = Counter()
        try:
            with upstream(counter.handle) as server:
                proxy = controller.proxy(server.address)
                controller.arm("app.between", Disconnect())
                with socket.create_connection(proxy.listen, timeout=BOUND_S) as conn:
                    reader = conn.makefile("rb")
                    conn.sendall(b"INCR one\n")
                    assert reader.readline() == b"1\n"
                    point("app.between")  # every connection of the test's proxies is reset
                    open_after = proxy.connections  # type: ignore[attr-defined]
                    try:
                        conn.sendall(b"INCR two\n")
                        failed = reader.readline() == b""
                    except ConnectionError:
                        failed = True
            kinds = tuple(e.kind for e in controller.events if e.kind.is_fault)
            return failed, counter.applied, open_after, kinds
        finally:
            controller.close()

    assert replays(run) == (True, 1, 0, (EventKind.DISCONNECT, EventKind.DISCONNECT))
