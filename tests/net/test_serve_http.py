"""``faultline serve`` as an HTTP server: bursts, keep-alive, chunked bodies, ``Expect``,
limits, deadlines, browsers, methods, and clients that misbehave."""

from __future__ import annotations

import http.client
import json
import selectors
import shutil
import socket
import struct
import subprocess
import threading
import tracemalloc
from typing import Any

import pytest

from pytest_faultline.errors import FaultlineError
from pytest_faultline.net.server import BROWSER_REFUSED, ToxiproxyServer
from pytest_faultline.net.toxiproxy import ToxiproxyClient

from .proxy_support import BOUND_S
from .serve_support import (
    LINUX_ONLY,
    closed_by_server,
    exchange,
    open_client,
    open_fds,
    os_threads,
    read_answer,
    request_bytes,
    serving,
    settle,
)

BURST = 200


# -- a burst of clients ------------------------------------------------------------------------


def _create_and_delete(server: ToxiproxyServer, number: int) -> tuple[int, int]:
    name = f"burst{number}"
    created = exchange(
        server, request_bytes("POST", "/proxies", {"name": name, "upstream": "127.0.0.1:1"})
    )
    deleted = exchange(server, request_bytes("DELETE", f"/proxies/{name}"))
    return created.status, deleted.status


@LINUX_ONLY
def test_a_burst_of_200_clients_creating_and_deleting_proxies_all_succeed() -> None:
    threads_before, fds_before = os_threads(), open_fds()
    results: dict[int, object] = {}
    start = threading.Barrier(BURST + 1, timeout=BOUND_S * 2)
    with serving() as server:

        def client(number: int) -> None:
            start.wait()
            try:
                results[number] = _create_and_delete(server, number)
            except OSError as exc:  # refused or reset: the backlog overflowed
                results[number] = exc

        clients = [threading.Thread(target=client, args=(n,)) for n in range(BURST)]
        for thread in clients:
            thread.start()
        start.wait()  # all 200 connect at once
        for thread in clients:
            thread.join(BOUND_S * 4)
        assert not any(thread.is_alive() for thread in clients)
        failed = {n: r for n, r in results.items() if r != (201, 204)}
        assert len(results) == BURST
        assert not failed, f"{len(failed)} of {BURST} failed, e.g. {next(iter(failed.values()))}"
        assert server.proxies == {}
    # Every proxy, connection, handler thread and the loop are gone with the server.
    assert settle(os_threads, threads_before) <= threads_before
    assert settle(open_fds, fds_before) <= fds_before


@LINUX_ONLY
def test_connections_are_served_by_a_bounded_number_of_threads() -> None:
    with serving(workers=3) as server:
        base = os_threads()
        clients = [open_client(server) for _ in range(60)]
        try:
            for conn in clients:  # 60 requests in flight at once, from this one thread
                conn.sendall(request_bytes("GET", "/version"))
            for conn in clients:
                with conn.makefile("rb") as reader:
                    assert read_answer(reader).status == 200
            assert os_threads() <= base + 3
        finally:
            for conn in clients:
                conn.close()


def test_half_sent_requests_do_not_starve_other_clients() -> None:
    # Slowloris: more half-sent requests than handler threads; the read deadline (15 s) is far
    # away, and yet a whole request is answered at once, because only whole requests reach a
    # handler thread.
    with serving(workers=2) as server:
        stuck = [open_client(server) for _ in range(20)]
        try:
            for conn in stuck:
                conn.sendall(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            answer = exchange(server, request_bytes("GET", "/version"))
            assert answer.status == 200
        finally:
            for conn in stuck:
                conn.close()


def test_half_sent_requests_at_the_connection_limit_make_room_for_new_clients() -> None:
    # Every slot holds a half-sent request whose read deadline is far away: the oldest one is
    # dropped for the newcomer, who is answered at once instead of waiting in the backlog.
    with serving(max_connections=10) as server:
        stuck = [open_client(server) for _ in range(10)]
        try:
            for conn in stuck:
                conn.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
            assert exchange(server, request_bytes("GET", "/version")).status == 200
            with selectors.DefaultSelector() as sel:
                for conn in stuck:
                    sel.register(conn, selectors.EVENT_READ)
                dropped = [key.fileobj for key, _ in sel.select(0)]  # closed before the answer
            assert len(dropped) == 1  # one made room; the others still wait for their deadline
            assert isinstance(dropped[0], socket.socket)
            assert closed_by_server(dropped[0])
        finally:
            for conn in stuck:
                conn.close()


def test_a_half_sent_request_gets_408_at_its_read_deadline_not_500() -> None:
    with serving(read_timeout_s=0.3) as server, open_client(server) as conn:
        conn.sendall(b'POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"na')
        with conn.makefile("rb") as reader:
            answer = read_answer(reader)
        assert answer.status == 408
        assert answer.json() == {
            "error": "request timeout: the request did not arrive whole within 0.3 s",
            "status": 408,
        }
        assert answer.headers["connection"] == "close"
        assert closed_by_server(conn)
        assert server.proxies == {}


def test_an_idle_keep_alive_connection_is_closed_quietly_at_its_idle_deadline() -> None:
    with serving(idle_timeout_s=0.3) as server, open_client(server) as conn:
        conn.sendall(request_bytes("GET", "/version"))
        with conn.makefile("rb") as reader:
            assert read_answer(reader).status == 200
            assert reader.read() == b""  # closed without a word: no request was under way


# -- one loop thread, however often started ----------------------------------------------------

ROUND_TRIPS = 300
CLIENT_TIMEOUT_S = 2.0  # an answer on loopback takes milliseconds; a lost one fails at once


@LINUX_ONLY
def test_starting_a_started_server_again_starts_no_second_loop() -> None:
    with ToxiproxyServer() as server:  # __enter__ starts it
        threads = os_threads()
        assert server.start() is server
        assert os_threads() == threads
        assert exchange(server, request_bytes("GET", "/version")).status == 200


def test_a_stopped_server_cannot_start_again() -> None:
    server = ToxiproxyServer().start()
    server.stop()
    with pytest.raises(FaultlineError) as caught:
        server.start()
    assert str(caught.value) == (
        "this faultline serve server was stopped and cannot start again; "
        "create a new ToxiproxyServer"
    )


def test_sequential_round_trips_one_request_per_connection_are_all_answered() -> None:
    # `with ToxiproxyServer().start()` starts twice (start, then __enter__). Two loop threads
    # once raced on one selector and one connection table, and within ~100 round trips of
    # urllib's one-request-per-connection client a request was never answered.
    with ToxiproxyServer().start() as server:
        client = ToxiproxyClient(server.url, timeout=CLIENT_TIMEOUT_S)
        for number in range(ROUND_TRIPS):
            client.create_proxy(f"loop{number}", ("127.0.0.1", 1)).close()
        assert server.proxies == {}
        assert server._http.accepted == 2 * ROUND_TRIPS


def test_sequential_round_trips_on_one_kept_alive_connection_are_all_answered() -> None:
    with ToxiproxyServer().start() as server:
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT_S)
        try:
            body = {"name": "kept", "upstream": "127.0.0.1:1"}
            for _ in range(ROUND_TRIPS):
                conn.request("POST", "/proxies", json.dumps(body))
                created = conn.getresponse()
                assert (created.status, json.loads(created.read())["name"]) == (201, "kept")
                conn.request("DELETE", "/proxies/kept")
                deleted = conn.getresponse()
                assert (deleted.status, deleted.read()) == (204, b"")
        finally:
            conn.close()
        assert server.proxies == {}
        assert server._http.accepted == 1  # one connection: never closed and reopened


# -- HTTP/1.1 ----------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with serving() as server, open_client(server) as conn, conn.makefile("rb") as reader:
        conn.sendall(request_bytes("POST", "/proxies", {"name": "a", "upstream": "127.0.0.1:1"}))
        assert read_answer(reader).status == 201
        conn.sendall(request_bytes("GET", "/proxies/a"))
        assert read_answer(reader).json()["name"] == "a"
        # Pipelined: two requests in one write, answered in order.
        conn.sendall(request_bytes("DELETE", "/proxies/a") + request_bytes("GET", "/proxies"))
        assert read_answer(reader).status == 204
        assert read_answer(reader).json() == {}


def test_connection_close_and_http_1_0_end_the_connection_after_the_answer() -> None:
    with serving() as server:
        for data in (
            request_bytes("GET", "/version", headers={"Connection": "close"}),
            b"GET /version HTTP/1.0\r\n\r\n",
        ):
            with open_client(server) as conn, conn.makefile("rb") as reader:
                conn.sendall(data)
                answer = read_answer(reader)
                assert (answer.status, answer.headers["connection"]) == (200, "close")
                assert reader.read() == b""


def test_chunked_request_bodies() -> None:
    body = json.dumps({"name": "chunky", "upstream": "127.0.0.1:1"}).encode()
    chunks = b"".join(
        f"{len(part):x}{';ext=1' if i == 0 else ''}\r\n".encode() + part + b"\r\n"
        for i, part in enumerate((body[:5], body[5:17], body[17:]))
    )
    data = request_bytes("POST", "/proxies", headers={"Transfer-Encoding": "chunked"})
    with serving() as server, open_client(server) as conn, conn.makefile("rb") as reader:
        for piece in (data, chunks[:7], chunks[7:], b"0\r\nX-Trailer: 1\r\n\r\n"):
            conn.sendall(piece)  # arrives in pieces, split inside a size line and a chunk
        answer = read_answer(reader)
        assert (answer.status, answer.json()["name"]) == (201, "chunky")
        conn.sendall(request_bytes("GET", "/proxies/chunky"))  # the connection goes on
        assert read_answer(reader).status == 200


def test_requests_library_sends_chunked_bodies_on_a_kept_alive_session() -> None:
    requests = pytest.importorskip("requests")

    def parts() -> Any:  # a generator body: requests sends it chunked
        yield b'{"name": "gen", '
        yield b'"upstream": "127.0.0.1:1"}'

    with serving() as server, requests.Session() as session:
        session.trust_env = False  # loopback only, whatever proxy the environment names
        created = session.post(f"{server.url}/proxies", data=parts(), timeout=BOUND_S)
        assert created.status_code == 201
        assert session.get(f"{server.url}/proxies/gen", timeout=BOUND_S).json()["name"] == "gen"
        assert session.delete(f"{server.url}/proxies/gen", timeout=BOUND_S).status_code == 204
        assert server._http.accepted == 1  # three requests, one connection


def test_expect_100_continue_is_answered_before_the_body() -> None:
    body = json.dumps({"name": "e", "upstream": "127.0.0.1:1"}).encode()
    head = request_bytes("POST", "/proxies", headers={"Expect": "100-continue"})
    head = head.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    with serving() as server, open_client(server) as conn, conn.makefile("rb") as reader:
        conn.sendall(head)
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert reader.readline() == b"\r\n"
        conn.sendall(body)
        assert read_answer(reader).status == 201


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_100_continue_and_reuses_its_connection() -> None:
    # curl sends the body after 1 s when no "100 Continue" comes; -v shows what came.
    big = [{"name": f"p{i}", "upstream": "127.0.0.1:1"} for i in range(30)]
    with serving() as server:
        url = server.url
        command = ["curl", "-sv", "--noproxy", "*", "--max-time", str(BOUND_S)]
        command += ["-H", "Content-Type: application/json", "-H", "Expect: 100-continue"]
        command += ["--data-binary", json.dumps(big), f"{url}/populate"]
        command += ["--next", "-s", f"{url}/proxies"]  # a second request, same connection
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BOUND_S * 2, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "< HTTP/1.1 100 Continue" in result.stderr
        assert "Re-using existing connection" in result.stderr
        assert len(server.proxies) == 30


# -- bad requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "12, 13", " "])
def test_a_bad_content_length_is_400_at_once(length: str) -> None:
    with serving() as server, open_client(server) as conn, conn.makefile("rb") as reader:
        conn.sendall(request_bytes("POST", "/proxies", headers={"Content-Length": length}))
        answer = read_answer(reader)  # at once: before any read deadline (15 s > BOUND_S)
        assert answer.status == 400
        assert answer.json()["error"] == (
            f"bad Content-Length {length.strip()!r}: it must be a whole number of bytes >= 0"
        )
        assert closed_by_server(conn)


def test_a_huge_content_length_is_refused_without_allocating_it() -> None:
    with serving() as server:
        tracemalloc.start()
        try:
            answer = exchange(
                server,
                request_bytes("POST", "/proxies", headers={"Content-Length": str(10**13)}),
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert answer.status == 413
    assert answer.json() == {
        "error": "request body of 10000000000000 bytes is over the limit of 1048576",
        "status": 413,
    }
    assert peak < 8 * 1024 * 1024  # a 10 TB body was never reserved


def test_the_body_size_limit_holds_for_length_and_chunked_bodies() -> None:
    with serving(max_body_bytes=1000) as server:
        at_limit = json.dumps({"name": "x", "upstream": "127.0.0.1:1"}).ljust(1000).encode()
        assert exchange(server, request_bytes("POST", "/proxies", at_limit)).status == 201
        over = exchange(server, request_bytes("POST", "/proxies", b" " * 1001))
        assert (over.status, over.json()["status"]) == (413, 413)
        chunked = request_bytes("POST", "/proxies", headers={"Transfer-Encoding": "chunked"})
        over = exchange(server, chunked + b"200\r\n" + b" " * 512 + b"\r\n200\r\n")
        assert over.json() == {"error": "request body over the limit of 1000 bytes", "status": 413}


def test_headers_over_the_limit_are_431() -> None:
    with serving(max_header_bytes=2000) as server:
        answer = exchange(server, request_bytes("GET", "/version", headers={"X-Pad": "y" * 3000}))
        assert answer.status == 431


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GET /version\r\n\r\n", 400, "bad request line: 'GET /version'"),
        (b"GET /version HTTP/2.0\r\n\r\n", 505, "HTTP version not supported: HTTP/2.0"),
        (b"GET /version HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "bad request header line"),
        (
            b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "Transfer-Encoding 'gzip' is not supported",
        ),
        (
            b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400,
            "both Transfer-Encoding and Content-Length",
        ),
        (
            b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "bad chunked body: chunk size b'zz'",
        ),
        (
            b"POST /proxies HTTP/1.1\r\nContent-Length: 2\r\nExpect: 200-ok\r\n\r\n",
            417,
            "Expect: '200-ok' is not supported",
        ),
    ],
)
def test_malformed_requests_get_json_errors(data: bytes, status: int, message: str) -> None:
    with serving() as server:
        answer = exchange(server, data)
    assert (answer.status, answer.headers["content-type"]) == (status, "application/json")
    assert answer.json()["status"] == status
    assert message in answer.json()["error"]


def test_deeply_nested_json_is_400_not_500() -> None:
    with serving() as server:
        answer = exchange(server, request_bytes("POST", "/proxies", b"[" * 100_000))
    assert answer.status == 400
    assert answer.json()["error"].startswith("bad request body")


# -- methods and browsers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/proxies", "GET, POST"),
        ("OPTIONS", "/proxies/db", "GET, POST, PATCH, DELETE"),
        ("TRACE", "/version", "GET"),
        ("DELETE", "/reset", "POST"),
        ("BREW", "/populate", "POST"),
    ],
)
def test_unsupported_methods_are_405_with_a_json_body(method: str, path: str, allow: str) -> None:
    with serving() as server:
        answer = exchange(server, request_bytes(method, path))
    assert answer.status == 405
    assert answer.headers["allow"] == allow
    assert answer.json() == {
        "error": f"method {method} not allowed on {path}; use {allow}",
        "status": 405,
    }


def test_head_is_405_without_a_body_and_the_connection_goes_on() -> None:
    with serving() as server, open_client(server) as conn, conn.makefile("rb") as reader:
        conn.sendall(request_bytes("HEAD", "/version"))
        answer = read_answer(reader, head=True)
        assert (answer.status, answer.headers["allow"]) == (405, "GET")
        assert int(answer.headers["content-length"]) > 0  # what a GET-like answer would carry
        conn.sendall(request_bytes("GET", "/version"))
        assert read_answer(reader).json() == {"version": "2.12.0"}


def test_browsers_are_refused_with_403_so_a_web_page_cannot_drive_the_api() -> None:
    browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    create = {"name": "evil", "upstream": "127.0.0.1:1"}
    with serving() as server:
        refused = exchange(
            server, request_bytes("POST", "/proxies", create, headers={"User-Agent": browser})
        )
        assert (refused.status, refused.json()) == (
            403,
            {"error": BROWSER_REFUSED, "status": 403},
        )
        assert server.proxies == {}
        # Any other client, even one naming Mozilla later in its User-Agent, is served.
        other = {"User-Agent": "curl/8.5.0 (like Mozilla/5.0)"}
        assert (
            exchange(server, request_bytes("POST", "/proxies", create, headers=other)).status == 201
        )


# -- clients that go away ----------------------------------------------------------------------


def _rude_clients(server: ToxiproxyServer) -> None:
    """Clients that disconnect mid-request, mid-body, before reading the answer, and with RST."""
    create = request_bytes("POST", "/proxies", {"name": "r", "upstream": "127.0.0.1:1"})
    for data in (create[:10], create[:-5], create, b"GET /version HTTP/1.1\r\n"):
        with open_client(server) as conn:
            conn.sendall(data)
    with open_client(server) as conn:
        conn.sendall(request_bytes("GET", "/proxies") * 50)  # never reads the 50 answers
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    assert exchange(server, request_bytes("GET", "/version")).status == 200  # still serving


def test_clients_that_disconnect_mid_request_cost_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with ToxiproxyServer(verbose=True) as server:
        _rude_clients(server)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "disconnected in the middle of a request" in err  # one line each, in verbose mode
