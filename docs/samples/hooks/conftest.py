"""A conftest that adds a scenario through the hook and reports each failing run's token."""

from __future__ import annotations

from pytest_faultline import actions


def slow_disk(faultline, seconds: float = 0.001):
    """Every disk write takes `seconds` longer."""
    faultline.arm("disk.write", actions.Delay(seconds))


def upload_to_ci(nodeid, token):
    # a stand-in for a CI upload: one line per failing test, in the directory pytest runs in
    with open("faultline-tokens.txt", "a", encoding="utf-8") as out:
        out.write(f"{nodeid} {token}\n")


def pytest_faultline_scenarios(registry):
    registry.add("slow_disk", slow_disk)


def pytest_faultline_failure(item, token, record):
    upload_to_ci(item.nodeid, token)  # record is the JSON report entry so far
