"""Fixtures for the proofd tests: both implementations, a running daemon, connected clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from proofd_disconnect import IMPLEMENTATIONS
from proofd_disconnect.client import ProofClient
from proofd_disconnect.core import BaseDaemon

BUGGY_REASON = (
    "the buggy daemon releases a dropped link's responses before the references to them are "
    "removed, deletes the admin path, kills sessions at once and reuses cids at once"
)


MARKER = (
    "buggy_fails(raises): the exception the incident makes the buggy implementation raise "
    "under the test's fault; its strict xfail accepts that failure and no other"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(params=["fixed", "buggy"])
def implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Under a fault: the fixed daemon must pass; the buggy one must fail (strict xfail).

    The test names the buggy one's failure with ``@pytest.mark.buggy_fails(raises=SomeError)``: a
    typo'd scenario, or a crash of another kind, is then an error, never a catch."""
    if request.param == "buggy":
        mark = request.node.get_closest_marker("buggy_fails")
        if mark is None:
            pytest.fail(
                f"{request.node.nodeid} uses the 'implementation' fixture: mark it "
                f"@pytest.mark.buggy_fails(raises=<the exception the buggy implementation raises>)",
                pytrace=False,
            )
        xfail = pytest.mark.xfail(strict=True, raises=mark.kwargs["raises"], reason=BUGGY_REASON)
        request.applymarker(xfail)
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=["fixed", "buggy"])
def any_implementation(request: pytest.FixtureRequest) -> ModuleType:
    """Without faults both implementations work: the bug is latent."""
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def daemon_for(faultline, tmp_path: Path) -> Iterator[Callable[[ModuleType], BaseDaemon]]:
    """``daemon_for(module)`` starts that implementation's daemon; stopped after the test.

    The test's clock starts first, so the daemon's periodic check runs on it: time stands
    still until the test (or a ``clock_jump``) moves it."""
    _ = faultline.clock
    started: list[BaseDaemon] = []

    def start(module: ModuleType) -> BaseDaemon:
        daemon: BaseDaemon = module.Daemon(tmp_path / "admin").start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., ProofClient]]:
    """``connect(address, user)``: a logged-in client, closed after the test."""
    clients: list[ProofClient] = []

    def make(address: tuple[str, int], user: str) -> ProofClient:
        client = ProofClient(address, user)
        clients.append(client)
        client.login()
        return client

    yield make
    for client in clients:
        client.close()
