"""Under faults the fixed daemon delivers nothing stale, keeps its cids and stays up; the buggy
one writes a result into another client's link, uses a released response, or gives a
reconnecting client's cid away.

The invariants, for every test: no client receives a result that is not its own, the daemon's
error handler caught nothing (in xproofd, each entry was a crash), and a dropped client that
comes back with its cid gets its client, its sessions and its results back.
"""

from __future__ import annotations

import itertools
import threading

import pytest

from pytest_faultline.actions import Stall

BOUND_S = 5.0


def assert_nothing_stale(daemon, *clients) -> None:
    for client in clients:
        client.ping()  # a round trip: anything sent to it before has arrived
        assert client.foreign == [], f"{client.user} got someone else's result: {client.foreign}"
    assert daemon.errors == [], f"the daemon crashed: {daemon.errors}"


@pytest.mark.buggy_fails(raises=AssertionError)
def test_cron_cleanup_runs_after_the_next_connection(
    implementation, daemon_for, connect, faultline
):
    """The rare crash: the cron's cleanup comes after the next connection got the response."""
    daemon = daemon_for(implementation)
    deferral = faultline.defer(implementation.ClientManager.handle_disconnect)
    sending = faultline.arm("proofd.session.result", Stall(timeout=BOUND_S), times=1)
    alice = connect(daemon.address, "alice")
    sid = alice.start_session()
    session = daemon.sessions.sessions[sid]
    alice.submit(sid, 7)
    assert sending.wait(1, timeout=BOUND_S), "alice's worker never got to her result"

    alice.drop()  # her link drops while her worker is about to send
    assert daemon.wait_until(lambda: daemon.recycled == 1), "the daemon never recycled the link"
    assert deferral.wait(1, timeout=BOUND_S), "the cron never reached its cleanup"
    bob = connect(daemon.address, "bob")  # the pool hands him the response alice's link had
    sending.release()
    assert daemon.wait_until(lambda: session.done == 1)
    (held,) = deferral.release()
    assert held.thread == "client-cron"  # the cron itself was late, as a busy cron would be

    assert_nothing_stale(daemon, bob)
    assert alice.reconnect()["resumed"], "alice could not come back for her result"
    assert alice.wait_until(lambda: alice.results), "alice's result was lost"
    assert [r["y"] for r in alice.results] == [49]


@pytest.mark.faultline("disconnect_mid_recycle", at="proofd.recycle")
@pytest.mark.buggy_fails(raises=AssertionError)
def test_every_link_drops_mid_recycle(implementation, daemon_for, connect, faultline):
    """A link is being recycled when every connection drops, while a worker is about to send
    and the cron is late: no worker may write through a released response."""
    daemon = daemon_for(implementation)
    deferral = faultline.defer(implementation.ClientManager.handle_disconnect)
    sending = faultline.arm("proofd.session.result", Stall(timeout=BOUND_S), times=1)
    alice, bob = connect(daemon.address, "alice"), connect(daemon.address, "bob")
    sid = alice.start_session()
    session = daemon.sessions.sessions[sid]
    alice.submit(sid, 7)
    assert sending.wait(1, timeout=BOUND_S), "alice's worker never got to her result"

    connect(daemon.address, "alice").close()  # her second link ends; mid-recycle, all drop
    assert daemon.wait_until(lambda: daemon.recycled == 3), "not every link was recycled"
    assert alice.wait_until(lambda: alice.closed)
    assert bob.wait_until(lambda: bob.closed)
    sending.release()
    assert daemon.wait_until(lambda: session.done == 1)
    deferral.release()
    assert daemon.wait_until(lambda: daemon.manager.handled == 3)
    drops = [e.name for e in faultline.events if e.kind == "disconnect"]
    assert drops.count("proofd.recycle") == 1  # the fault fired once, and dropped the links

    carol = connect(daemon.address, "carol")  # the daemon is still up
    carol.submit(carol.start_session(), 2)
    assert carol.wait_until(lambda: carol.results)
    assert_nothing_stale(daemon, carol)
    assert alice.reconnect()["resumed"], "alice could not come back for her result"
    assert alice.wait_until(lambda: alice.results), "alice's result was lost"


@pytest.mark.buggy_fails(raises=AssertionError)
def test_a_timed_out_clients_worker_finishes_later(implementation, daemon_for, connect, faultline):
    """The common crash: check_clients times alice out while her worker is busy; the worker
    sends her result after her link was recycled; she reconnects for it."""
    daemon = daemon_for(implementation)
    sending = faultline.arm("proofd.session.result", Stall(timeout=BOUND_S), times=1)
    alice = connect(daemon.address, "alice")
    sid = alice.start_session()
    session = daemon.sessions.sessions[sid]
    alice.submit(sid, 7)
    assert sending.wait(1, timeout=BOUND_S), "alice's worker never got to her result"

    faultline.clock.advance(75)  # a long pause (a suspended VM): the check finds her silent
    assert alice.wait_until(lambda: alice.closed), "check_clients should have dropped alice"
    assert daemon.wait_until(lambda: daemon.manager.handled == 1)
    sending.release()
    assert daemon.wait_until(lambda: session.done == 1)
    assert daemon.errors == [], f"the daemon crashed: {daemon.errors}"

    assert alice.reconnect() == {"op": "hello", "cid": alice.cid, "resumed": True}
    assert alice.wait_until(lambda: alice.results), "alice never got her result"
    assert [r["y"] for r in alice.results] == [49]
    assert_nothing_stale(daemon, alice)


@pytest.mark.faultline("clock_jump", at="proofd.request", seconds=75)
@pytest.mark.buggy_fails(raises=AssertionError)
def test_a_reconnecting_client_keeps_its_cid(implementation, daemon_for, connect):
    """The clock jumps 75 s after alice's login: check_clients drops her; another connection
    of hers logs in right after; then she comes back with her cid."""
    daemon = daemon_for(implementation)
    alice = connect(daemon.address, "alice")
    assert alice.wait_until(lambda: alice.closed), "check_clients should have dropped alice"
    assert daemon.wait_until(lambda: daemon.manager.handled == 1)

    admin = connect(daemon.address, "alice")  # e.g. an admin connection of the same user
    assert admin.cid != alice.cid, f"alice's cid {alice.cid} was given to her other connection"
    assert alice.reconnect() == {"op": "hello", "cid": alice.cid, "resumed": True}
    assert_nothing_stale(daemon, alice, admin)


def down(proxy, alice) -> None:
    with proxy.down():  # the network goes away: both ends see their connection end
        assert alice.wait_until(lambda: alice.closed)


def reset_peer(proxy, alice) -> None:
    toxic = proxy.add_toxic("reset_peer", stream="upstream", timeout=0)
    with pytest.raises(ConnectionError):
        alice.ping()  # her next request resets the connection, both ends
    toxic.remove()


@pytest.mark.parametrize("drop", [down, reset_peer])
@pytest.mark.buggy_fails(raises=AssertionError)
def test_a_dropped_client_reconnects_to_its_session(
    implementation, daemon_for, connect, faultline, drop
):
    """Alice's link drops (through a fault proxy) while her worker computes; she comes back
    with her cid within the reconnect time and gets her session and its results."""
    daemon = daemon_for(implementation)
    proxy = faultline.proxy(daemon.address)
    computing = faultline.arm("proofd.session.result", Stall(timeout=BOUND_S), times=1)
    alice = connect(proxy.listen, "alice")
    sid = alice.start_session()
    session = daemon.sessions.sessions[sid]
    alice.submit(sid, 7)
    assert computing.wait(1, timeout=BOUND_S), "alice's worker never got to her result"

    drop(proxy, alice)
    assert daemon.wait_until(lambda: daemon.manager.handled == 1), "the drop was never handled"
    computing.release()  # the worker finishes while alice is away
    assert daemon.wait_until(lambda: session.done == 1)

    assert alice.reconnect() == {"op": "hello", "cid": alice.cid, "resumed": True}
    alice.submit(sid, 8)
    assert alice.wait_until(lambda: len(alice.results) == 2), f"results: {alice.results}"
    assert [r["y"] for r in alice.results] == [49, 64]
    assert_nothing_stale(daemon, alice)


@pytest.mark.buggy_fails(raises=AssertionError)
def test_a_result_written_into_a_dropping_link_is_sent_again(
    implementation, daemon_for, connect, faultline
):
    """Found by the fault sweep (tests/test_proofd_sweep.py, now and then): the worker writes a
    result into alice's link, the link drops before she has read it, and her session is still
    busy. Written is not delivered: when she comes back, the daemon must send it again."""
    daemon = daemon_for(implementation)
    alice = connect(daemon.address, "alice")
    sid = alice.start_session()
    session = daemon.sessions.sessions[sid]
    unread = faultline.sockets.stall_after(0, peer=daemon.address)  # alice reads no more
    assert unread.wait(1, timeout=BOUND_S), "alice's reader never stalled"
    alice.submit(sid, 7)
    assert daemon.wait_until(lambda: session.done == 1), "alice's first result was never sent"
    computing = faultline.arm("proofd.session.result", Stall(timeout=BOUND_S), times=1)
    alice.submit(sid, 8)
    assert computing.wait(1, timeout=BOUND_S), "alice's worker never got to her second result"

    alice.drop()  # her first result is still unread: it goes with the link
    unread.remove()
    assert daemon.wait_until(lambda: daemon.manager.handled == 1), "the drop was never handled"
    computing.release()  # the second result is kept for her
    assert daemon.wait_until(lambda: session.done == 2)

    assert alice.reconnect() == {"op": "hello", "cid": alice.cid, "resumed": True}
    assert alice.wait_until(lambda: len(alice.results) == 2), f"results: {alice.results}"
    assert [r["y"] for r in alice.results] == [49, 64]
    assert_nothing_stale(daemon, alice)


_runs = itertools.count()


class Wire:
    """An in-memory stand-in for the link's socket, so that every step of a schedule goes
    through the scheduler (a real socket call leaves it, and replays would not be exact)."""

    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def fileno(self) -> int:
        return -1

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


def recycle_while_sending(module, root) -> list[str]:
    """Alice's link is recycled (as its thread does when the peer is gone) while her worker
    sends a result. Returns what the daemon's error handler caught."""
    daemon = module.Daemon(root / f"run-{next(_runs)}")  # fresh for every schedule
    daemon.manager.cron.start()
    link = module.Protocol(daemon, Wire())
    link.client, _ = daemon.manager.login(link, "alice", None)
    session = daemon.sessions.start(link.client)
    session.submit(7)
    recycler = threading.Thread(target=link.recycle, name="link")
    recycler.start()
    recycler.join(BOUND_S)
    assert daemon.wait_until(lambda: session.done == 1)
    daemon.stop()
    return daemon.errors


@pytest.mark.faultline("thread_preemption", runs=200)
@pytest.mark.buggy_fails(raises=AssertionError)
def test_recycle_is_safe_in_every_schedule(implementation, tmp_path):
    """The recycle of alice's link and her worker's send, in up to 200 interleavings: the
    buggy daemon's worker uses a released response in some of them; the fixed one in none."""
    assert recycle_while_sending(implementation, tmp_path) == [], "the daemon crashed"
