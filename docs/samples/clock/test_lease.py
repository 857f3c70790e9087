"""Virtual time: the lease expires when the test moves the clock, not after 30 real seconds."""

from __future__ import annotations

from lease import Lease


def test_lease_expires(faultline):
    clock = faultline.clock
    lease = Lease(seconds=30)
    clock.advance(29)
    assert lease.valid()
    clock.advance(1)
    assert not lease.valid()
