from __future__ import annotations

import pytest
from messages import EXPECTED, Server, frame


@pytest.fixture
def start_server():
    servers = []

    def start(respond=lambda request: frame(EXPECTED)):
        servers.append(Server(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def server(start_server):
    return start_server()
