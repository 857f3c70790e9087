"""What only the embedded proxy does: seeded toxicity, fault events, the Disconnect action,
teardown with the test, input checks; and the ``fault_proxy`` fixture and backend option."""

from __future__ import annotations

import itertools
import os
import socket
import textwrap
import threading
import time

import pytest

from pytest_faultline import point
from pytest_faultline.actions import Disconnect
from pytest_faultline.controller import Faultline
from pytest_faultline.net import proxies
from pytest_faultline.net.protocol import ProxyError, ToxicBadRequest
from pytest_faultline.net.proxy import EmbeddedProxy
from pytest_faultline.net.server import ToxiproxyServer
from pytest_faultline.net.toxiproxy import ToxiproxyClient
from pytest_faultline.settings import Settings

from .proxy_support import BOUND_S, closed_port, connect, echo, read_until_eof, upstream


def reset_pattern(seed: int, server_address: tuple[str, int]) -> list[bool]:
    controller = Faultline(seed=seed, nodeid="tests/net/pattern")
    try:
        proxy = controller.proxy(server_address)
        proxy.add_toxic("reset_peer", toxicity=0.5)
        pattern = []
        for _ in range(16):
            with connect(proxy) as conn:
                conn.sendall(b"x")
                try:
                    pattern.append(read_until_eof(conn) == b"")  # echoed until we close
                except ConnectionResetError:
                    pattern.append(True)
                except TimeoutError:
                    pattern.append(False)
        return pattern
    finally:
        controller.close()


def test_toxicity_is_rolled_per_connection_from_the_seed() -> None:
    def echo_once(conn: socket.socket) -> None:
        conn.sendall(conn.recv(16))

    with upstream(echo_once) as server:
        first = reset_pattern(7, server.address)
        again = reset_pattern(7, server.address)
        other = reset_pattern(8, server.address)
    assert first == again
    assert any(first)  # 16 rolls of 0.5: some connections each way
    assert not all(first)
    assert other != first


def test_every_injection_is_a_fault_event(faultline: Faultline) -> None:
    with upstream(echo) as server:
        proxy = faultline.proxy(server.address, name="db")
        proxy.add_toxic("limit_data", bytes=2)
        with connect(proxy) as conn:
            conn.sendall(b"ping")
            assert read_until_eof(conn) == b"pi"
    refused = faultline.proxy(closed_port(), name="gone")
    with connect(refused) as conn:
        assert conn.recv(1) == b""
    details = [(e.kind, e.name, e.detail) for e in faultline.events]
    assert (
        "proxy",
        "db",
        "add toxic limit_data_downstream: limit_data downstream bytes=2, toxicity 1.0",
    ) in details
    assert any(
        kind == "toxic" and name == "db" and "acts on connection 1 downstream" in detail
        for kind, name, detail in details
    )
    assert any(
        kind == "disconnect" and "limit_data_downstream closed the connection" in detail
        for kind, _, detail in details
    )
    assert any(name == "gone" and "refused connection 1" in detail for _, name, detail in details)


class Client:
    """A client of an echo service; ``reconnect=True`` is the fixed one, which opens a new
    connection when the old one was dropped."""

    def __init__(self, address: tuple[str, int], *, reconnect: bool) -> None:
        self.address = address
        self.reconnect = reconnect
        self.conn = socket.create_connection(address, timeout=BOUND_S)

    def request(self, data: bytes) -> bytes:
        try:
            self.conn.sendall(data)
            answer = self.conn.recv(65536)
            if not answer:
                raise ConnectionResetError("server closed the connection")
            return answer
        except ConnectionError:
            if not self.reconnect:
                raise
            self.conn.close()
            self.conn = socket.create_connection(self.address, timeout=BOUND_S)
            self.conn.sendall(data)
            return self.conn.recv(65536)

    def close(self) -> None:
        self.conn.close()


@pytest.mark.parametrize("reconnect", [False, True], ids=["naive", "reconnecting"])
def test_disconnect_action_drops_the_tests_proxy_connections(
    faultline: Faultline, reconnect: bool
) -> None:
    with upstream(echo) as server:
        proxy = faultline.proxy(server.address)
        faultline.arm("app.recycle", Disconnect())
        client = Client(proxy.listen, reconnect=reconnect)
        try:
            assert client.request(b"one") == b"one"
            point("app.recycle")  # the worst moment: between two requests
            if reconnect:
                assert client.request(b"two") == b"two"
            else:
                with pytest.raises(ConnectionError):
                    client.request(b"two")
        finally:
            client.close()
    assert any("reset every connection" in e.detail for e in faultline.events)


def test_proxy_and_connections_close_with_the_test() -> None:
    controller = Faultline(seed=1, nodeid="tests/net/teardown")
    with upstream(echo) as server:
        proxy = controller.proxy(server.address)
        conn = connect(proxy)
        with conn:
            conn.sendall(b"x")
            assert conn.recv(1) == b"x"
            controller.close()
            assert conn.recv(1) == b""
        with pytest.raises(ConnectionRefusedError):
            connect(proxy).close()
    with pytest.raises(ProxyError, match="closed; make a new one"):
        proxy.add_toxic("latency")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.add_toxic("latency", delay=1), "no attribute 'delay'; its attributes are"),
        (lambda p: p.add_toxic("latency", latency=-5), "whole number >= 0"),
        (lambda p: p.add_toxic("latency", latency=1.5), "whole number >= 0"),
        (lambda p: p.add_toxic("latency", toxicity=1.5), "from 0.0 to 1.0"),
        (lambda p: p.toxic("nope"), "toxic not found"),
        (lambda p: p.remove_toxic("nope"), "toxic not found"),
    ],
)
def test_bad_toxic_input_says_what_to_fix(faultline: Faultline, call: object, message: str) -> None:
    proxy = faultline.proxy(closed_port())
    with pytest.raises(ProxyError, match=message):
        call(proxy)  # type: ignore[operator]


@pytest.mark.parametrize("upstream_value", ["nowhere", ("127.0.0.1", "80"), 8080])
def test_bad_upstream_says_how_to_write_one(faultline: Faultline, upstream_value: object) -> None:
    with pytest.raises(ToxicBadRequest, match="host:port"):
        faultline.proxy(upstream_value)  # type: ignore[arg-type]


def test_core_runs_without_a_controller() -> None:
    with (
        upstream(echo) as server,
        EmbeddedProxy("{}:{}".format(*server.address), name="bare") as proxy,
    ):
        assert proxy.upstream == server.address
        proxy.add_toxic("slicer", average_size=1, delay=0)
        with connect(proxy) as conn:
            conn.sendall(b"hello")
            got = b""
            while len(got) < 5:
                got += conn.recv(16)
            assert got == b"hello"
        assert proxy.as_json()["toxics"][0]["type"] == "slicer"


FAULT_PROXY_TEST = """
    import socket
    import pytest
    from pytest_faultline.net.fixtures import fault_proxy

    @pytest.fixture
    def echo_address():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener
        listener.close()

    def test_truncated(fault_proxy, echo_address, faultline):
        proxy = fault_proxy(echo_address.getsockname(), name="svc")
        proxy.add_toxic("limit_data", stream="upstream", bytes=3)
        with socket.create_connection(proxy.listen, timeout=5) as conn:
            served, _ = echo_address.accept()
            with served:
                conn.sendall(b"hello")
                served.settimeout(5)
                got = b""
                while part := served.recv(16):
                    got += part
                assert got == b"hel"
        assert any("limit_data" in e.detail for e in faultline.events)
"""


def test_fault_proxy_fixture_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(textwrap.dedent(FAULT_PROXY_TEST))
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_toxiproxy_backend_end_to_end_deletes_its_proxies(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(textwrap.dedent(FAULT_PROXY_TEST))
    with ToxiproxyServer() as api:
        result = pytester.runpytest_subprocess(
            "-W",
            "error",
            "-p",
            "no:randomly",
            "--faultline-backend=toxiproxy",
            f"--toxiproxy-url={api.url}",
        )
        result.assert_outcomes(passed=1)
        assert api.proxies == {}


def test_unreachable_toxiproxy_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(textwrap.dedent(FAULT_PROXY_TEST))
    host, port = closed_port()
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "--faultline-backend=toxiproxy",
        f"--toxiproxy-url=http://{host}:{port}",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*cannot reach the Toxiproxy server at http://{host}:{port}*faultline serve*"]
    )


def test_toxic_added_after_bulk_data_applies_and_keeps_bytes(faultline: Faultline) -> None:
    # A megabyte first moves the connection to the zero-copy path; a toxic added then must
    # still see every later byte, in order.
    bulk = bytes(range(256)) * 4096
    with upstream(echo) as server:
        proxy = faultline.proxy(server.address)
        with connect(proxy) as conn:
            conn.sendall(bulk)
            got = b""
            while len(got) < len(bulk):
                got += conn.recv(1 << 20)
            assert got == bulk
            proxy.add_toxic("slicer", average_size=100, size_variation=50)
            proxy.add_toxic("latency", stream="upstream", latency=300)
            start = time.monotonic()
            conn.sendall(bulk)
            got = b""
            while len(got) < len(bulk):
                got += conn.recv(1 << 20)
            assert got == bulk
            assert time.monotonic() - start >= 0.25


def test_many_connections_share_one_proxy_thread(faultline: Faultline) -> None:
    with upstream(echo) as server:
        proxy = faultline.proxy(server.address)
        assert isinstance(proxy, EmbeddedProxy)
        proxy.add_toxic("latency", latency=50, jitter=20)
        conns = [connect(proxy) for _ in range(50)]
        try:
            for i, conn in enumerate(conns):
                conn.sendall(b"%04d" % i * 256)
            for i, conn in enumerate(conns):
                got = b""
                while len(got) < 1024:
                    got += conn.recv(4096)
                assert got == b"%04d" % i * 256
            assert proxy.connections == 50
        finally:
            for conn in conns:
                conn.close()
    proxy_threads = [t for t in threading.enumerate() if t.name.startswith("faultline-proxy")]
    assert len(proxy_threads) == 1


def test_disconnect_skips_proxies_the_test_closed_itself(faultline: Faultline) -> None:
    with upstream(echo) as server:
        gone = faultline.proxy(server.address, name="gone")
        live = faultline.proxy(server.address, name="live")
        gone.close()
        faultline.arm("app.drop", Disconnect())
        with connect(live) as conn:
            conn.sendall(b"x")
            assert conn.recv(1) == b"x"
            point("app.drop")
            with pytest.raises(ConnectionResetError):
                conn.recv(1)


@pytest.mark.parametrize(
    "how",
    [
        ("--toxiproxy-skip-unavailable",),
        ("-o", "toxiproxy_skip_unavailable=true"),
        ("env",),
    ],
)
def test_unreachable_toxiproxy_can_skip_instead(
    pytester: pytest.Pytester, how: tuple[str, ...]
) -> None:
    pytester.makepyfile(textwrap.dedent(FAULT_PROXY_TEST))
    host, port = closed_port()
    if how == ("env",):
        pytester._monkeypatch.setenv("FAULTLINE_TOXIPROXY_SKIP_UNAVAILABLE", "1")
        how = ()
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "-rs",
        "--faultline-backend=toxiproxy",
        f"--toxiproxy-url=http://{host}:{port}",
        *how,
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED*cannot reach the Toxiproxy server at http://{host}:{port}*"
            "(skipped: --toxiproxy-skip-unavailable)"
        ]
    )


@pytest.mark.parametrize("backend", ["embedded", "toxiproxy"])
def test_a_generated_name_never_collides_with_the_users(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxies, "_REMOTE_NAMES", itertools.count(1))
    with ToxiproxyServer().start() as api, upstream(echo) as server:
        settings = Settings(1, "given").replace(backend=backend, toxiproxy_url=api.url)
        controller = Faultline(seed=1, nodeid="tests/net/names", settings=settings)
        try:
            taken = ["proxy2", "proxy4", f"faultline_{os.getpid()}_1"]
            for name in taken:
                controller.proxy(server.address, name=name)
            # Also a name taken on the shared server by someone else (another run, a worker).
            ToxiproxyClient(api.url).create_proxy(f"faultline_{os.getpid()}_2", server.address)
            generated = [controller.proxy(server.address).name for _ in range(3)]
        finally:
            controller.close()
    assert not set(generated) & set(taken)
    assert len(set(generated)) == 3
    if backend == "embedded":
        assert generated == ["proxy1", "proxy3", "proxy5"]
    else:
        pid = os.getpid()
        assert generated == [f"faultline_{pid}_3", f"faultline_{pid}_4", f"faultline_{pid}_5"]


def test_proxy_errors_are_public_and_importable_from_their_old_modules() -> None:
    import pytest_faultline
    from pytest_faultline.net import protocol, toxiproxy

    names = [
        "ProxyError",
        "ToxicBadRequest",
        "ProxyNotFound",
        "ProxyConflict",
        "ProxyServerError",
        "ToxiproxyUnreachable",
        "UnsupportedFault",
    ]
    for name in names:
        cls = getattr(pytest_faultline, name)
        assert cls.__module__ == "pytest_faultline"
        assert name in pytest_faultline.__all__
        assert getattr(protocol, name) is cls
        assert issubclass(cls, pytest_faultline.FaultlineError)
    assert toxiproxy.ToxiproxyUnreachable is pytest_faultline.ToxiproxyUnreachable
    assert issubclass(pytest_faultline.UnsupportedFault, pytest_faultline.ToxicBadRequest)
