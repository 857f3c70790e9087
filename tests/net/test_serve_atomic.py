"""``faultline serve``: a proxy update (``PATCH``) and ``/populate`` are all or nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_faultline.net.server import ToxiproxyServer

from .proxy_support import closed_port, connect, echo, upstream
from .serve_support import exchange, request_bytes, serving


@pytest.fixture
def api() -> Iterator[ToxiproxyServer]:
    with serving() as server:
        yield server


def call(server: ToxiproxyServer, method: str, path: str, body: object = None) -> tuple[int, Any]:
    answer = exchange(server, request_bytes(method, path, body))
    return answer.status, answer.json() if answer.body else None


def _state(server: ToxiproxyServer) -> Any:
    return call(server, "GET", "/proxies")[1]


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"upstream": "127.0.0.1:2", "listen": "0.0.0.0:0"}, "loopback only"),
        ({"upstream": "127.0.0.1:2", "enabled": "no"}, "enabled must be true or false"),
        ({"listen": "127.0.0.1:0", "upstream": "nowhere"}, "not an address"),
        ({"enabled": False, "listen": "127.0.0.1:99999"}, "listen"),
    ],
)
def test_a_bad_patch_changes_nothing(
    api: ToxiproxyServer, update: dict[str, object], message: str
) -> None:
    call(api, "POST", "/proxies", {"name": "db", "upstream": "127.0.0.1:1"})
    before = _state(api)
    status, answer = call(api, "PATCH", "/proxies/db", update)
    assert (status, answer["status"]) == (400, 400)
    assert message in answer["error"]
    assert _state(api) == before


def test_a_patch_whose_listen_port_is_taken_changes_nothing(api: ToxiproxyServer) -> None:
    with upstream(echo) as server, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = "{}:{}".format(*server.address)
        call(api, "POST", "/proxies", {"name": "db", "upstream": up})
        before = _state(api)
        taken_listen = f"127.0.0.1:{taken.getsockname()[1]}"
        moved = {"upstream": f"127.0.0.1:{closed_port()[1]}", "listen": taken_listen}
        status, answer = call(api, "PATCH", "/proxies/db", moved)
        assert status == 500
        assert "Address already in use" in answer["error"]
        assert _state(api) == before
        with connect(api.get("db")) as conn:  # still listening, still to the old upstream
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"


def test_enabling_a_disabled_proxy_on_a_taken_port_changes_nothing(api: ToxiproxyServer) -> None:
    call(api, "POST", "/proxies", {"name": "db", "upstream": "127.0.0.1:1", "enabled": False})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = _state(api)
        status, _ = call(
            api, "PATCH", "/proxies/db", {"listen": f"127.0.0.1:{port}", "enabled": True}
        )
        assert status == 500
        assert _state(api) == before  # not moved to the taken port, still disabled


def test_a_good_patch_applies_every_field(api: ToxiproxyServer) -> None:
    call(api, "POST", "/proxies", {"name": "db", "upstream": "127.0.0.1:1"})
    listen = f"127.0.0.1:{closed_port()[1]}"
    status, answer = call(
        api,
        "PATCH",
        "/proxies/db",
        {"upstream": "127.0.0.1:2", "listen": listen, "enabled": False},
    )
    assert status == 200
    assert (answer["upstream"], answer["listen"], answer["enabled"]) == (
        "127.0.0.1:2",
        listen,
        False,
    )


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"name": "new", "upstream": "127.0.0.1:1"}, {"name": "bad"}],
            "missing required field: upstream at proxy 2",
        ),
        (
            [{"name": "new", "upstream": "127.0.0.1:1"}, {"upstream": "127.0.0.1:1"}],
            "missing required field: name at proxy 2",
        ),
        (
            [
                {"name": "keep", "upstream": "127.0.0.1:9"},
                {"name": "new", "upstream": "127.0.0.1:1", "listen": "10.0.0.1:0"},
            ],
            "loopback only; use 127.0.0.1:0 at proxy 2",
        ),
        (
            [
                {"name": "new", "upstream": "127.0.0.1:1"},
                {"name": "new", "upstream": "127.0.0.1:2"},
            ],
            "duplicate proxy name 'new' in populate",
        ),
    ],
)
def test_a_bad_populate_changes_nothing(
    api: ToxiproxyServer, entries: list[dict[str, object]], message: str
) -> None:
    call(api, "POST", "/proxies", {"name": "keep", "upstream": "127.0.0.1:1"})
    call(api, "POST", "/proxies/keep/toxics", {"type": "latency", "attributes": {"latency": 5}})
    before = _state(api)
    status, answer = call(api, "POST", "/populate", entries)
    assert (status, answer["status"]) == (400, 400)
    assert message in answer["error"]
    assert _state(api) == before


def test_a_populate_that_cannot_listen_puts_the_proxies_back(api: ToxiproxyServer) -> None:
    call(api, "POST", "/proxies", {"name": "keep", "upstream": "127.0.0.1:1"})
    call(api, "POST", "/proxies/keep/toxics", {"type": "latency", "attributes": {"latency": 5}})
    call(api, "POST", "/proxies/keep/toxics", {"type": "timeout", "stream": "upstream"})
    before = _state(api)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_listen = f"127.0.0.1:{taken.getsockname()[1]}"
        entries = [
            {"name": "new", "upstream": "127.0.0.1:1"},
            {"name": "keep", "upstream": "127.0.0.1:2", "listen": before["keep"]["listen"]},
            {"name": "late", "upstream": "127.0.0.1:1", "listen": taken_listen},
        ]
        status, answer = call(api, "POST", "/populate", entries)
    assert status == 500
    assert "Address already in use" in answer["error"]
    assert _state(api) == before  # "new" gone, "keep" back on its port with its toxics


def test_populate_creates_keeps_and_replaces(api: ToxiproxyServer) -> None:
    call(api, "POST", "/proxies", {"name": "same", "upstream": "127.0.0.1:1"})
    call(api, "POST", "/proxies", {"name": "moved", "upstream": "127.0.0.1:1"})
    call(api, "POST", "/proxies/moved/toxics", {"type": "timeout"})
    same = _state(api)["same"]
    status, answer = call(
        api,
        "POST",
        "/populate",
        [
            {"name": "same", "upstream": "127.0.0.1:1", "listen": same["listen"]},
            {"name": "moved", "upstream": "127.0.0.1:2"},
            {"name": "fresh", "upstream": "127.0.0.1:3", "enabled": False},
        ],
    )
    assert status == 201
    by_name = {p["name"]: p for p in answer["proxies"]}
    assert by_name["same"] == same
    assert (by_name["moved"]["upstream"], by_name["moved"]["toxics"]) == ("127.0.0.1:2", [])
    assert by_name["fresh"]["enabled"] is False
