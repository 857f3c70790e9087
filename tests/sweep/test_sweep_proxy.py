"""The sweep at the test's embedded proxies: each proxied connection (``proxy upper#1 accept``)
and each chunk crossing it (``up@0`` to the server, ``down@0`` to the client) is a site, and the
faults there are the proxy's own toxics on that one connection (refuse, limit_data, reset_peer,
timeout, reply_lost). A client that does not retry fails when a reply is lost; one that reads
until it has every byte and retries an idempotent request survives every proxy fault."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from pytest_faultline.controller import Faultline
from pytest_faultline.sweep.api import Sweep

from .sweep_apps import HEADER, careful_request, frame, naive_request, upper_server

pytest_plugins = ["pytester"]

PROXY_KINDS = ["truncate", "reset", "reply_lost"]


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=7, nodeid="tests/sweep/test_sweep_proxy.py::test_x")
    yield controller
    controller.close()


@pytest.fixture
def address(fl: Faultline) -> Iterator[tuple[str, int]]:
    """The upper-case server, started once the socket layer is in place: an ``accept`` already
    waiting when the layer comes would hand out a connection the sweep cannot name."""
    assert fl.sockets.faults == []
    with upper_server() as served:
        yield served


def proxy_sites(found: Sweep) -> list[str]:
    return [s.describe() for s in found.sites if s.where == "proxy"]


def test_each_proxied_connection_and_chunk_is_a_site(
    fl: Faultline, address: tuple[str, int]
) -> None:
    proxy = fl.proxy(address, name="upper")
    found = fl.sweep(
        lambda: careful_request(proxy.listen, b"hello") == b"HELLO" or 1 / 0,
        kinds=["reply_lost"],
    )
    assert proxy_sites(found) == [
        "proxy upper#1 accept",
        "proxy upper#1 up@0",
        "proxy upper#1 down@0",
    ]
    (accept,) = (s for s in found.sites if s.describe() == "proxy upper#1 accept")
    assert accept.location == f"-> {address[0]}:{address[1]}"
    # reply_lost applies where a request goes up, only: one run.
    assert [r.sites[0].describe() for r in found.runs] == ["proxy upper#1 up@0"]
    assert found.passed, found.report()


@pytest.mark.xfail(strict=True, raises=ConnectionResetError, reason="a lost reply is not retried")
def test_a_client_that_does_not_retry_fails_when_a_reply_is_lost(
    fl: Faultline, address: tuple[str, int]
) -> None:
    proxy = fl.proxy(address, name="upper")
    fl.sweep(lambda: naive_request(proxy.listen, b"hello"), kinds=["reply_lost"])


def test_the_report_names_the_proxy_site_and_replays_it(
    fl: Faultline, address: tuple[str, int]
) -> None:
    proxy = fl.proxy(address, name="upper")
    found = fl.sweep(lambda: naive_request(proxy.listen, b"hello"), kinds=PROXY_KINDS, raises=False)
    failed = {(r.sites[0].describe(), found.kinds[r.faults[0].kind]) for r in found.failures}
    assert ("proxy upper#1 up@0", "reply_lost") in failed
    assert ("proxy upper#1 accept", "reset") in failed  # refused with an RST at connect
    assert ("proxy upper#1 down@0", "truncate") in failed  # the reply cut at byte 0
    assert all(r.reproducible for r in found.failures), found.report()
    report = found.report()
    assert "proxy upper#1 up@0" in report
    assert any(
        "sweep reply_lost" in e.detail and "reply lost on connection" in e.detail for e in fl.events
    )


def test_a_careful_client_survives_every_proxy_fault(
    fl: Faultline, address: tuple[str, int]
) -> None:
    proxy = fl.proxy(address, name="upper")
    found = fl.sweep(
        lambda: careful_request(proxy.listen, b"hello") == b"HELLO" or 1 / 0, kinds=PROXY_KINDS
    )
    on_proxy = [r for r in found.singles if r.sites and r.sites[0].where == "proxy"]
    assert len(on_proxy) == 7  # accept: 2 kinds, up@0: 3, down@0: 2
    assert all(r.outcome == "pass" for r in on_proxy), found.report()


def test_a_proxy_made_in_the_body_keeps_its_site_names(
    fl: Faultline, address: tuple[str, int]
) -> None:
    def body() -> None:
        proxy = fl.proxy(address)  # a generated name, new in every run
        assert careful_request(proxy.listen, b"hi") == b"HI"
        proxy.close()

    found = fl.sweep(body, kinds=PROXY_KINDS)
    assert "proxy proxy1#1 up@0" in proxy_sites(found)
    assert all(r.outcome == "pass" for r in found.runs), found.report()  # none unreached


def short_timeout_request(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=0.2) as sock:
        sock.sendall(frame(b"hi"))
        data = b""
        while len(data) < HEADER.size + 2:
            chunk = sock.recv(64)
            if not chunk:
                raise ConnectionError("closed mid-reply")
            data += chunk
        return data[HEADER.size :]


def test_a_stall_at_the_proxy_is_the_clients_own_timeout(
    fl: Faultline, address: tuple[str, int]
) -> None:
    proxy = fl.proxy(address, name="upper")
    found = fl.sweep(
        lambda: short_timeout_request(proxy.listen), kinds=["stall"], raises=False, verify=False
    )
    errors = {r.sites[0].describe(): type(r.failure) for r in found.failures}
    assert errors["proxy upper#1 down@0"] is TimeoutError
    assert errors["proxy upper#1 up@0"] is TimeoutError
    assert errors["proxy upper#1 accept"] is TimeoutError
    # Each stalled connection was closed when its run ended, not held for the stall's 10 s
    # (the server serves one connection at a time: a held one would fail the next run).
    ended = [e for e in fl.events if "the sweep's run ended" in e.detail]
    assert len(ended) == 3, [e.detail for e in fl.events if e.name == "upper"]
    assert all(r.sites for r in found.failures)  # no run failed without its own fault


ECHO_THROUGH_A_PROXY = """
import socket
import threading

import pytest

@pytest.fixture
def upper(faultline):
    # The socket layer first, then the server (see the how-to); the proxy outlives the runs.
    assert faultline.sockets.faults == []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.02)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with conn:
                    conn.settimeout(2)
                    conn.sendall(conn.recv(64).upper())
            except OSError:
                continue

    thread = threading.Thread(target=serve)
    thread.start()
    yield faultline.proxy(listener.getsockname()[:2], name="upper")
    stop.set()
    thread.join(5)
    listener.close()

@pytest.mark.faultline("fault_sweep", kinds=["reply_lost"])
def test_shout(upper):
    with socket.create_connection(upper.listen, timeout=2) as sock:
        sock.sendall(b"hi")
        assert sock.recv(64) == b"HI"
"""


def test_the_marker_sweeps_a_fixtures_proxy_and_the_token_replays_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_shout=ECHO_THROUGH_A_PROXY)
    first = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(
        [
            "*faultline sweep: * sites, 1 of 1 single faults in *: 1 failed",
            "*proxy upper#1 up@0*-> 127.0.0.1:*FAIL",
            "*FAIL reply_lost at proxy upper#1 up@0 (-> 127.0.0.1:*): ConnectionResetError: *",
        ]
    )
    token = re.search(r"--faultline-replay=(\S+)", first.stdout.str())
    assert token is not None
    again = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", f"--faultline-replay={token.group(1)}"
    )
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(
        [
            "*replayed the run of its token: ConnectionResetError: *",
            "*reset proxy upper#1 up@0: reply_lost (fault sweep)",
        ]
    )
