"""The sweep finds the incident without being told where: no ``after_bytes=``, no point.

The sweep records every socket operation of two ALIVE rounds (the startd's connects, writes and
reads, the schedd's reads and replies, each by byte offset), then re-runs the rounds once per
operation with the incident's faults: the stream stalls there (reads time out) or the peer
closes there (the message is cut). The buggy schedd answers -1 for a claim it holds when the
read of the claim id fails; the fixed one survives every single fault.
"""

from __future__ import annotations

import pytest
from condor_alive import IMPLEMENTATIONS
from condor_alive.core import UNKNOWN, Startd

KINDS = ["stall", "truncate"]  # the incident: a read that times out, a message cut short
COMMAND_BYTES = 5 + 9  # the command message: packet header + one integer field
BUGGY_REASON = "the buggy schedd answers -1 when the read of the claim id fails"


def two_alive_rounds(module, claim) -> None:
    """Two keepalive periods against a schedd made here: the sweep re-runs this body. Whatever
    fails on the wire, the schedd never calls the claim unknown and the startd keeps it."""
    schedd = module.Schedd()
    schedd.claims[claim.claim_id] = claim
    schedd.start()
    try:
        startd = Startd(schedd.address, claim)
        for _ in range(2):
            startd.send_alive()
    finally:
        schedd.stop()  # after the connection in hand is handled (a failed connect made none)
    assert [a for _, a in schedd.replies if a == UNKNOWN] == [], (
        f"the schedd called a claim it holds unknown: {schedd.replies}"
    )
    assert startd.claim == claim, f"the startd removed its claim, killed {startd.killed_jobs}"


@pytest.mark.faultline("fault_sweep", kinds=KINDS)
@pytest.mark.parametrize(
    "name",
    [
        "fixed",
        pytest.param(
            "buggy",
            marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=BUGGY_REASON),
        ),
    ],
)
def test_every_read_may_stall_or_end(name, claim):
    two_alive_rounds(IMPLEMENTATIONS[name], claim)


def test_the_sweep_points_at_the_claim_id_read(faultline, claim):
    found = faultline.sweep(
        lambda: two_alive_rounds(IMPLEMENTATIONS["buggy"], claim), kinds=KINDS, raises=False
    )
    failing = {(r.sites[0].describe(), found.kinds[r.faults[0].kind]) for r in found.failures}
    # The schedd's read of the second message of each round: the claim id, after the command.
    claim_id_read = f"accepted#0 read after {COMMAND_BYTES} B"
    assert (claim_id_read, "stall") in failing, found.report()
    assert (claim_id_read, "truncate") in failing, found.report()
    assert {site.split(" ")[0] for site, _ in failing} <= {"accepted#0", "accepted#1"}
    assert all(r.reproducible for r in found.failures), found.report()
    assert found.complete
