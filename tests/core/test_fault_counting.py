"""Only faults count: a proxy created or a clean exploration is bookkeeping, not a fault."""

from __future__ import annotations

import json

import pytest

SUITE = """
import socket
import threading

import pytest


@pytest.fixture
def server():
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()
    listener.close()


def test_only_a_proxy(faultline, server):
    faultline.proxy(server)


def test_clean_exploration(faultline):
    lock = threading.Lock()

    def body():
        with lock:
            pass

    faultline.explore(body, runs=3)


@pytest.mark.faultline("partial_read", max_bytes=1)
def test_scenario_but_nothing_read(faultline):
    pass


def test_a_fault(faultline):
    from pytest_faultline import point
    faultline.arm("p", ValueError)
    with pytest.raises(ValueError):
        point("p")
"""


def test_bookkeeping_is_no_fault_in_summary_and_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "report.json"
    result = pytester.runpytest(
        "--faultline-summary", f"--faultline-report={report}", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["suite * tests * faults * caught * survived * no fault *"])
    result.stdout.fnmatch_lines([". * 4 * 1 * 0 * 1 * 3 * 0"])
    tests = {t["nodeid"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    assert {name: t["faults"] for name, t in tests.items()} == {
        "test_only_a_proxy": 0,
        "test_clean_exploration": 0,
        "test_scenario_but_nothing_read": 0,
        "test_a_fault": 1,
    }
    proxy_events = tests["test_only_a_proxy"]["events"]
    assert [(e["kind"], e["fault"]) for e in proxy_events] == [("proxy", False)]
