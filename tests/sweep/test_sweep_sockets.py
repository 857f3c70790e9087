"""The sweep at socket operations: every connect, and every read and write by byte offset, of
both ends of a real loopback connection. A client that assumes one ``recv`` returns a whole
message fails at the first short read; a careful one survives every single fault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_faultline.controller import Faultline

from .sweep_apps import careful_request, naive_request, upper_server

NET_KINDS = ["stall", "truncate", "reset", "short_read"]


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=11, nodeid="tests/sweep/test_sockets.py::test_x")
    yield controller
    controller.close()


def round_trip(request: object) -> None:
    with upper_server() as address:
        assert request(address, b"hello") == b"HELLO"  # type: ignore[operator]


def test_the_sites_are_both_ends_of_the_connection(fl: Faultline) -> None:
    found = fl.sweep(lambda: round_trip(careful_request), kinds=NET_KINDS)
    described = [s.describe() for s in found.sites]
    assert described[0] == "connected#0 connect"  # the other sites' order is the threads'
    assert {"connected#0 write after 0 B", "accepted#0 read after 0 B"} <= set(described)
    assert "accepted#0 write after 0 B" in described  # the server's reply
    assert "accepted#0 read after 4 B" in described  # the server's read of the payload
    assert "connected#0 read after 4 B" in described  # the client's read of the reply
    assert all(s.location.startswith("tests/sweep/sweep_apps.py:") for s in found.sites)
    assert found.passed, found.report()
    assert found.complete


def test_a_naive_reader_fails_at_a_short_read(fl: Faultline) -> None:
    found = fl.sweep(lambda: round_trip(naive_request), kinds=NET_KINDS, raises=False)
    failed = {(r.sites[0].describe(), found.kinds[r.faults[0].kind]) for r in found.failures}
    assert ("connected#0 read after 0 B", "short_read") in failed
    assert ("connected#0 read after 4 B", "short_read") in failed
    # A short read on the server's side is harmless: the server reads until it has the bytes.
    assert ("accepted#0 read after 0 B", "short_read") not in failed
    report = found.report()
    assert "short_read" in report.splitlines()[1]  # the table's header names every kind
    shown = [f["faults"] for f in found.as_dict()["failures"]]  # every failure, not only 10
    assert any(
        f.startswith("short_read at connected#0 read after 0 B (tests/sweep/sweep_apps.py:")
        for f in shown
    )
    assert f"... and {len(shown) - 10} more failures (JSON report)" in report


def test_stall_and_reset_raise_what_a_real_socket_raises(fl: Faultline) -> None:
    found = fl.sweep(
        lambda: round_trip(naive_request), kinds=["stall", "reset"], raises=False, verify=False
    )
    errors = {
        (r.sites[0].describe(), found.kinds[r.faults[0].kind]): type(r.failure)
        for r in found.failures
    }
    assert errors[("connected#0 connect", "stall")] is TimeoutError
    assert errors[("connected#0 connect", "reset")] is ConnectionRefusedError
    assert errors[("connected#0 read after 0 B", "reset")] is ConnectionResetError
    assert errors[("connected#0 write after 0 B", "reset")] is ConnectionResetError
