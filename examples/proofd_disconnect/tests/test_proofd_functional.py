"""No faults: both implementations behave. The bug is latent until a link drops at a bad time."""

from __future__ import annotations

from proofd_disconnect.core import CHECK_PERIOD_S, CLIENT_TIMEOUT_S


def test_results_come_back_to_their_client(any_implementation, daemon_for, connect):
    daemon = daemon_for(any_implementation)
    alice, bob = connect(daemon.address, "alice"), connect(daemon.address, "bob")
    a, b = alice.start_session(), bob.start_session()
    for x in (2, 3):
        alice.submit(a, x)
        bob.submit(b, 10 * x)
    assert alice.wait_until(lambda: len(alice.results) == 2)
    assert bob.wait_until(lambda: len(bob.results) == 2)
    assert [(r["x"], r["y"]) for r in alice.results] == [(2, 4), (3, 9)]
    assert [(r["x"], r["y"]) for r in bob.results] == [(20, 400), (30, 900)]
    assert alice.foreign == bob.foreign == daemon.errors == []


def test_each_connection_of_a_user_gets_its_own_cid(any_implementation, daemon_for, connect):
    daemon = daemon_for(any_implementation)
    first, second = connect(daemon.address, "alice"), connect(daemon.address, "alice")
    assert (first.cid, second.cid) == (0, 1)
    assert (daemon.admin_root / "alice" / "1" / "alive").exists()


def test_a_disconnect_handled_promptly_harms_nobody(any_implementation, daemon_for, connect):
    daemon = daemon_for(any_implementation)
    alice = connect(daemon.address, "alice")
    sid = alice.start_session()
    alice.submit(sid, 5)
    assert alice.wait_until(lambda: alice.results)
    alice.drop()
    assert daemon.wait_until(lambda: daemon.manager.handled == 1)  # the cron was prompt
    bob = connect(daemon.address, "bob")
    bob.submit(bob.start_session(), 6)
    assert bob.wait_until(lambda: bob.results)
    assert [r["y"] for r in bob.results] == [36]
    assert bob.foreign == daemon.errors == []
    assert daemon.sessions.killed == [sid]  # alice's idle session had no client left


def test_check_clients_drops_a_silent_client(any_implementation, daemon_for, connect, faultline):
    daemon = daemon_for(any_implementation)
    alice = connect(daemon.address, "alice")
    faultline.clock.advance(CLIENT_TIMEOUT_S)  # checked every 10 s: not yet older than 60 s
    assert not alice.closed
    alice.ping()  # touches her admin file
    bob = connect(daemon.address, "bob")
    faultline.clock.advance(CLIENT_TIMEOUT_S + CHECK_PERIOD_S)
    assert alice.wait_until(lambda: alice.closed)
    assert bob.wait_until(lambda: bob.closed)
    assert daemon.wait_until(lambda: daemon.manager.handled == 2)
    assert daemon.errors == []
