"""The tutorial's scenario: a named, reusable fault recipe."""

from __future__ import annotations

from pytest_faultline import scenario


@scenario("flaky_store")
def flaky_store(faultline, failures: int = 1):
    """The first `failures` writes raise ConnectionError."""
    faultline.arm("store.write", ConnectionError, times=failures)
