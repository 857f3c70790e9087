"""Scenario parameters that come from a fixture: apply the scenario from the test."""

from __future__ import annotations

import pytest
from greeter import GREETING, Greeter, read_greeting, read_greeting_naive


@pytest.fixture
def greeter():
    server = Greeter()
    yield server
    server.close()


def test_reader_survives_short_reads(faultline, greeter):
    # The port is only known at run time, so a marker cannot name it: apply() takes the same
    # name and parameters as @pytest.mark.faultline, checked the same way.
    faultline.apply("partial_read", max_bytes=3, peer=f"127.0.0.1:{greeter.port}")
    assert read_greeting(greeter.port) == GREETING


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="one recv() is not one line")
def test_naive_reader_gets_part_of_the_line(faultline, greeter):
    faultline.apply("partial_read", max_bytes=3, peer=f"127.0.0.1:{greeter.port}")
    assert read_greeting_naive(greeter.port) == GREETING
