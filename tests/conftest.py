"""Shared test configuration. ``pytester`` comes from ``-p pytester`` in pyproject's addopts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import patch_guard
from tests.redis_support import redis_server  # noqa: F401  (a fixture: tests/net, tests/reallibs)

_SESSION_START = patch_guard.snapshot()


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Inner runs have no ini file, and pytest-asyncio warns when its loop scope is unset (the
    # suite runs with warnings as errors). pytester clears PYTEST_ADDOPTS, so set it after.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers() -> Iterator[None]:
    """A pytest run that a test starts (pytester, an example run as copied) is a session of its
    own. Under ``-n``, xdist's worker variables would leak into it, and plugins there would
    think xdist is active (pytest-benchmark then warns, an error under ``-W error``).

    Not through ``monkeypatch``: requesting it here would set it up before the patch guard
    below, so a test's own monkeypatching would be undone only after the guard looked."""
    names = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _no_patch_outlives_its_test() -> Iterator[None]:
    """Fail the test after which a patchable global (socket methods, ``time.*``,
    ``threading.*``, ``queue``, selectors, tracing) is not the object recorded at session start."""
    yield
    left = patch_guard.leaked(_SESSION_START)
    if left:
        patch_guard.restore(_SESSION_START, left)
        pytest.fail(f"a patch outlived this test: {', '.join(left)}", pytrace=False)
