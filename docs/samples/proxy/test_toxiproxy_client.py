"""The Toxiproxy client without the plugin's fixtures, against ``faultline serve``'s server."""

from __future__ import annotations

import pytest

from pytest_faultline.net.server import ToxiproxyServer
from pytest_faultline.net.toxiproxy import ToxiproxyClient


@pytest.fixture
def toxiproxy_url():
    # What `faultline serve` runs, in-process, on a free loopback port.
    with ToxiproxyServer() as server:
        yield server.url


def test_client_creates_a_proxy_and_a_toxic(toxiproxy_url):
    # [client]
    client = ToxiproxyClient(toxiproxy_url)  # e.g. "http://127.0.0.1:8474"
    proxy = client.create_proxy("db", ("127.0.0.1", 5432))
    toxic = proxy.add_toxic("latency", latency=200)
    toxic.update(jitter=50)  # merged into the attributes, on live connections too
    proxy.close()  # deletes it on the server
    # [/client]
    assert toxic.attributes["latency"] == 200
    assert toxic.attributes["jitter"] == 50
    assert client.proxies() == {}
