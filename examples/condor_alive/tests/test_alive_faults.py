"""Under network faults the fixed schedd keeps the claim alive; the buggy one kills the job.

The invariant, for every test: the startd holds a claim the schedd knows, so the schedd must
never answer -1, and the startd must never remove the claim. A failed keepalive is a
communication error; the next period retries.
"""

from __future__ import annotations

import logging

import pytest
from condor_alive.core import KNOWN, UNKNOWN, Startd

from pytest_faultline import actions

COMMAND_BYTES = 5 + 9  # the command message: packet header + one integer field


def assert_claim_survived(schedd, startd, claim) -> None:
    assert schedd.wait_for_connections(startd.attempts), "the schedd is still handling a keepalive"
    assert [answer for _, answer in schedd.replies if answer == UNKNOWN] == [], (
        f"the schedd called a claim it holds unknown: {schedd.replies}"
    )
    assert startd.claim == claim, f"the startd removed its claim and killed {startd.killed_jobs}"
    assert startd.killed_jobs == []


@pytest.mark.faultline("timeout_mid_message", after_bytes=COMMAND_BYTES)
@pytest.mark.buggy_fails(raises=AssertionError)
def test_payload_times_out_after_the_command(implementation, schedd_for, claim, faultline, caplog):
    caplog.set_level(logging.INFO)
    schedd = schedd_for(implementation, claim)
    startd = Startd(schedd.address, claim)

    assert startd.send_alive() is None  # no answer: a communication error
    assert "timeout reading 5 bytes" in caplog.text
    assert_claim_survived(schedd, startd, claim)

    for fault in faultline.sockets.faults:  # the network recovers; the next period retries
        fault.remove()
    assert startd.send_alive() == KNOWN
    assert_claim_survived(schedd, startd, claim)


@pytest.mark.buggy_fails(raises=AssertionError)
def test_proxy_holds_the_payload(implementation, schedd_for, claim, faultline):
    schedd = schedd_for(implementation, claim)
    proxy = faultline.proxy(schedd.address)
    startd = Startd(proxy.listen, claim)
    held = faultline.arm("startd.before_payload", actions.Stall(timeout=10), times=1)

    def payload_never_arrives(**context: object) -> None:
        # The command has crossed the proxy; from now on nothing more goes upstream.
        proxy.add_toxic("timeout", stream="upstream", timeout=0)
        held.release()

    faultline.arm("schedd.command", payload_never_arrives, times=1)
    assert startd.send_alive() is None
    assert_claim_survived(schedd, startd, claim)


@pytest.mark.buggy_fails(raises=AssertionError)
def test_proxy_cuts_the_claim_id_in_half(implementation, schedd_for, claim, faultline):
    schedd = schedd_for(implementation, claim)
    proxy = faultline.proxy(schedd.address)
    half = len(claim.claim_id.encode()) // 2
    proxy.add_toxic("limit_data", stream="upstream", bytes=COMMAND_BYTES + 5 + 1 + 4 + half)
    startd = Startd(proxy.listen, claim)
    assert startd.send_alive() is None
    assert_claim_survived(schedd, startd, claim)


@pytest.mark.faultline("partial_read", max_bytes=1)
def test_one_byte_reads_reassemble(any_implementation, schedd_for, claim, faultline):
    # Short reads are not the incident's bug: both codecs loop until they have the bytes.
    schedd = schedd_for(any_implementation, claim)
    proxy = faultline.proxy(schedd.address)
    proxy.add_toxic("slicer", stream="upstream", average_size=3, size_variation=2, delay=50)
    startd = Startd(proxy.listen, claim)
    assert [startd.send_alive() for _ in range(3)] == [KNOWN] * 3
    assert_claim_survived(schedd, startd, claim)
    assert [e.kind for e in faultline.events if e.kind != "scenario"], "no fault was injected"
