"""``faultline serve``: Toxiproxy's HTTP API, status codes and JSON shapes, and the command."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_faultline.net.server import TOXIPROXY_VERSION, ToxiproxyServer, serve

from .proxy_support import BOUND_S, closed_port, connect, echo, upstream

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def api() -> Iterator[ToxiproxyServer]:
    with ToxiproxyServer() as server:
        yield server


def call(server: ToxiproxyServer, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(server.url + path, data=data, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=BOUND_S) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def test_proxy_lifecycle_codes_and_shapes(api: ToxiproxyServer) -> None:
    up = f"127.0.0.1:{closed_port()[1]}"
    status, created = call(api, "POST", "/proxies", {"name": "db", "upstream": up})
    assert status == 201
    assert created["name"] == "db"
    assert created["upstream"] == up
    assert created["enabled"] is True
    assert created["toxics"] == []
    assert created["listen"].startswith("127.0.0.1:")
    assert not created["listen"].endswith(":0")  # the real port, picked by the system
    assert call(api, "POST", "/proxies", {"name": "db", "upstream": up}) == (
        409,
        {"error": "proxy already exists: 'db'", "status": 409},
    )
    assert call(api, "GET", "/proxies") == (200, {"db": created})
    assert call(api, "GET", "/proxies/db") == (200, created)
    status, disabled = call(api, "PATCH", "/proxies/db", {"enabled": False})
    assert (status, disabled["enabled"]) == (200, False)
    status, enabled = call(api, "POST", "/proxies/db", {"enabled": True})
    assert (status, enabled["enabled"]) == (200, True)
    assert call(api, "DELETE", "/proxies/db") == (204, None)
    assert call(api, "GET", "/proxies/db")[0] == 404
    assert call(api, "DELETE", "/proxies/db")[0] == 404


def test_toxic_defaults_patch_merge_and_delete(api: ToxiproxyServer) -> None:
    call(api, "POST", "/proxies", {"name": "db", "upstream": "127.0.0.1:1"})
    status, toxic = call(
        api, "POST", "/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 100}}
    )
    assert status == 200  # as Toxiproxy: a new toxic is 200, a new proxy 201
    assert toxic == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 100, "jitter": 0},
    }
    status, merged = call(
        api, "PATCH", "/proxies/db/toxics/latency_downstream", {"attributes": {"jitter": 5}}
    )
    assert (status, merged["attributes"]) == (200, {"latency": 100, "jitter": 5})
    assert call(api, "GET", "/proxies/db/toxics") == (200, [merged])
    assert call(api, "GET", "/proxies/db/toxics/latency_downstream") == (200, merged)
    assert call(api, "GET", "/proxies/db")[1]["toxics"] == [merged]
    dup = call(api, "POST", "/proxies/db/toxics", {"type": "latency"})
    assert dup[0] == 409
    assert call(api, "DELETE", "/proxies/db/toxics/latency_downstream") == (204, None)
    assert call(api, "DELETE", "/proxies/db/toxics/latency_downstream")[0] == 404
    assert call(api, "PATCH", "/proxies/db/toxics/nope", {"attributes": {}})[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/proxies", b"{not json", 400, "bad request body"),
        ("POST", "/proxies", {"name": "x"}, 400, "missing required field: upstream"),
        ("POST", "/proxies", {"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
        ("POST", "/proxies", {"name": "x", "upstream": "nowhere"}, 400, "not an address"),
        (
            "POST",
            "/proxies",
            {"name": "x", "upstream": "127.0.0.1:1", "listen": "0.0.0.0:0"},
            400,
            "loopback only",
        ),
        ("POST", "/proxies/db/toxics", {"type": "lag"}, 400, "invalid toxic type"),
        ("POST", "/proxies/db/toxics", {"type": "latency", "stream": "up"}, 400, "stream was"),
        (
            "POST",
            "/proxies/db/toxics",
            {"type": "latency", "attributes": {"latency": -1}},
            400,
            "whole number >= 0",
        ),
        ("POST", "/proxies/db/toxics", {"type": "latency", "toxicity": 2}, 400, "0.0 to 1.0"),
        ("GET", "/proxies/nope/toxics", None, 404, "proxy not found"),
        ("GET", "/nothing", None, 404, "no such endpoint"),
        ("DELETE", "/version", None, 405, "not allowed"),
    ],
)
def test_bad_requests_get_toxiproxy_codes(
    api: ToxiproxyServer, method: str, path: str, body: object, status: int, message: str
) -> None:
    call(api, "POST", "/proxies", {"name": "db", "upstream": "127.0.0.1:1"})
    got_status, answer = call(api, method, path, body)
    assert got_status == status
    assert answer["status"] == status
    assert message in answer["error"]


def test_populate_then_reset_reenables_and_clears_toxics(api: ToxiproxyServer) -> None:
    with upstream(echo) as server:
        up = "{}:{}".format(*server.address)
        status, answer = call(
            api, "POST", "/populate", [{"name": "a", "upstream": up}, {"name": "b", "upstream": up}]
        )
        assert status == 201
        assert [p["name"] for p in answer["proxies"]] == ["a", "b"]
        # Populating again keeps proxies whose listen and upstream are unchanged.
        listen = answer["proxies"][0]["listen"]
        again = call(api, "POST", "/populate", [{"name": "a", "upstream": up, "listen": listen}])
        assert again[1]["proxies"][0]["listen"] == listen
        call(api, "POST", "/proxies/a", {"enabled": False})
        call(api, "POST", "/proxies/b/toxics", {"type": "timeout"})
        assert call(api, "POST", "/reset") == (204, None)
        proxies = call(api, "GET", "/proxies")[1]
        assert [p["enabled"] for p in proxies.values()] == [True, True]
        assert [p["toxics"] for p in proxies.values()] == [[], []]
        with connect(api.get("a")) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"


def test_version(api: ToxiproxyServer) -> None:
    assert call(api, "GET", "/version") == (200, {"version": TOXIPROXY_VERSION})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the 'future' package it imports
def test_toxiproxy_python_client_drives_the_server(api: ToxiproxyServer) -> None:
    toxiproxy = pytest.importorskip("toxiproxy")
    consumer = toxiproxy.api.APIConsumer
    saved = consumer.host, consumer.port
    consumer.host, consumer.port = api.address
    try:
        with upstream(echo) as server:
            client = toxiproxy.Toxiproxy()
            proxy = client.create(upstream="{}:{}".format(*server.address), name="py")
            proxy.add_toxic(type="limit_data", attributes={"bytes": 2})
            host, port = proxy.listen.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=BOUND_S) as conn:
                conn.sendall(b"ping")
                assert conn.recv(16) == b"pi"
                assert conn.recv(16) == b""
            assert [t.name for t in proxy.toxics().values()] == ["limit_data_downstream"]
            proxy.destroy_toxic("limit_data_downstream")
            with pytest.raises(toxiproxy.exceptions.ProxyExists):
                client.create(upstream="{}:{}".format(*server.address), name="py")
            client.destroy(proxy)
            assert client.proxies() == {}
    finally:
        consumer.host, consumer.port = saved


def test_serve_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve("127.0.0.1", taken.getsockname()[1]) == 1
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_faultline_serve_command_stops_cleanly_on_signal(signum: int) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_faultline.cli", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stderr is not None
        with selectors.DefaultSelector() as sel:
            sel.register(process.stderr, selectors.EVENT_READ)
            assert sel.select(BOUND_S * 2), "faultline serve did not start"
        banner = process.stderr.readline().decode()
        assert "Toxiproxy 2.12.0 API on http://127.0.0.1:" in banner
        url = banner.split(" on ")[1].split()[0]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "/version", timeout=BOUND_S) as resp:
            assert json.loads(resp.read()) == {"version": TOXIPROXY_VERSION}
        process.send_signal(signum)
        assert process.wait(BOUND_S) == 0
        assert "stopped" in process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(BOUND_S)
        if process.stderr is not None:
            process.stderr.close()


def test_patching_upstream_and_listen_moves_the_proxy(api: ToxiproxyServer) -> None:
    with upstream(echo) as server:
        call(api, "POST", "/proxies", {"name": "db", "upstream": f"127.0.0.1:{closed_port()[1]}"})
        with connect(api.get("db")) as conn:
            assert conn.recv(16) == b""  # upstream refused: the client sees EOF
        new_listen = f"127.0.0.1:{closed_port()[1]}"
        status, moved = call(
            api,
            "PATCH",
            "/proxies/db",
            {"upstream": "{}:{}".format(*server.address), "listen": new_listen},
        )
        assert (status, moved["listen"]) == (200, new_listen)
        with connect(api.get("db")) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"
