"""Thread affinity: the server object must stay on the thread that made it.

The library is not thread-safe, so every use of a ``Server`` must come from one thread. The
``thread_affinity`` scenario confines each ``Server`` made during the test to its maker (here
the main loop's thread) and raises at the first call from any other thread. No race needs to
happen: the buggy guardian is flagged at once, on a single ordinary run.
"""

from __future__ import annotations

import pytest
from guardian_cas import buggy
from guardian_cas.cas import Client
from guardian_cas.core import ServerDied, check_updates

from pytest_faultline import ThreadAffinityError

CYCLES = 4


def affinity_violations(faultline) -> list[str]:
    return [
        e.detail for e in faultline.events if e.kind == "thread-affinity" and e.name == "violation"
    ]


@pytest.mark.faultline("thread_affinity", types=["guardian_cas.cas:Server"])
@pytest.mark.buggy_fails(raises=ThreadAffinityError)
def test_server_is_used_from_one_thread_only(implementation, faultline):
    guardian = implementation.Guardian()
    screen = Client(guardian.server.endpoint)  # clients talk to the endpoint, from any thread
    exectime = screen.subscribe("EXECTIME", control=True)
    guardian.run(cycles=CYCLES)

    assert affinity_violations(faultline) == []
    assert check_updates(exectime, guardian) >= CYCLES


@pytest.mark.xfail(strict=True, raises=ThreadAffinityError, reason="the server thread is flagged")
@pytest.mark.faultline("thread_affinity", types=["guardian_cas.cas:Server"])
def test_buggy_server_thread_is_flagged_at_its_first_call(faultline):
    # The details of the buggy guardian's failure: the first call the "cas-server" thread makes
    # (process()) raises before it runs, so the server never processed anything; the daemon
    # sees its server thread dead. The test then fails with ThreadAffinityError (the only
    # failure this strict xfail accepts) because a worker thread broke the confinement.
    guardian = buggy.Guardian()
    with pytest.raises(ServerDied, match="ThreadAffinityError"):
        guardian.run(cycles=CYCLES)

    first, *_ = affinity_violations(faultline)
    assert first == (
        "Server object is confined to thread 'MainThread' but thread 'cas-server' called its "
        "method 'process'"
    )
    assert guardian.server.processed == 0
