"""No faults: both implementations behave. The bug is latent until the network misbehaves."""

from __future__ import annotations

from condor_alive.core import KNOWN, UNKNOWN, Claim, Startd


def test_known_claim_is_kept_alive(any_implementation, schedd_for, claim):
    schedd = schedd_for(any_implementation, claim)
    startd = Startd(schedd.address, claim)
    assert [startd.send_alive() for _ in range(3)] == [KNOWN] * 3
    assert startd.claim == claim
    assert startd.killed_jobs == []


def test_unknown_claim_is_removed(any_implementation, schedd_for, claim):
    # A claim the schedd really does not know: removing it is right.
    schedd = schedd_for(any_implementation)
    startd = Startd(schedd.address, Claim("<10.0.0.1:9618>#1#1#stale", "7.0"))
    assert startd.send_alive() == UNKNOWN
    assert startd.claim is None
    assert startd.killed_jobs == ["7.0"]
    assert schedd.replies == [("<10.0.0.1:9618>#1#1#stale", UNKNOWN)]
