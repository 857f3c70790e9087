"""The sweep finds the incident without being told where: no ``at=``.

The sweep records every fault point two clients' work reaches (each request a link handles,
each result a worker sends, each recycle of a link), then re-runs the work once per point and
hit with every connection dropped there. A client whose link drops comes back with its cid, as
a PROOF client does. The buggy daemon loses the client (its admin path is gone, or the cron has
not removed the old link's references yet); the fixed one resumes it at every one of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import pytest
from proofd_disconnect import IMPLEMENTATIONS
from proofd_disconnect.client import ProofClient
from proofd_disconnect.core import BOUND_S, BaseDaemon

T = TypeVar("T")
KINDS = ["disconnect"]  # the incident: a client's link drops, at any point of the daemon's work
BUGGY_REASON = "the buggy daemon deletes a dropped client's admin path: it cannot come back"
_runs = itertools.count()


def come_back(daemon: BaseDaemon, client: ProofClient) -> None:
    """The link dropped: wait until the daemon has recycled it, then log in again with the cid
    (a client that never got a cid just logs in)."""
    assert client.wait_until(lambda: client.closed), f"{client.user}'s link never closed"
    if client.cid is None:
        client.login()
        return
    for link in list(daemon.links):  # the daemon notices the drop on the link's own thread
        if link.client is not None and (link.client.user, link.client.cid) == (
            client.user,
            client.cid,
        ):
            link.thread.join(BOUND_S)
    # Each recycle posts CLIENT_DISCONNECT: wait until the cron has handled every one of them.
    assert daemon.wait_until(lambda: daemon.manager.handled >= daemon.recycled)
    hello = client.reconnect()
    assert hello["resumed"], f"{client.user} came back with cid {client.cid} and got {hello}"


def step(daemon: BaseDaemon, client: ProofClient, action: Callable[[], T]) -> T:
    """``action()``; if the link drops meanwhile, come back and do it again."""
    try:
        return action()
    except ConnectionError:
        come_back(daemon, client)
        return action()


def compute(daemon: BaseDaemon, client: ProofClient, x: int) -> None:
    """Start a session, submit ``x`` and wait for its result. If the link drops first, come
    back; a session that was idle when the link dropped was killed (as designed: only busy
    sessions wait for their client), so then start again."""
    sid = step(daemon, client, client.start_session)
    try:
        client.submit(sid, x)
        sent = True
    except ConnectionError:
        sent = False
    if client.wait_until(lambda: client.results or client.closed) and client.results:
        return
    come_back(daemon, client)
    if sid not in daemon.sessions.sessions:
        sid, sent = client.start_session(), False
    if not sent:
        client.submit(sid, x)
    assert client.wait_until(lambda: client.results), f"{client.user}'s result was lost"


def two_clients_work(module: ModuleType, root: Path) -> None:
    """Alice and bob each compute in a session; another link of alice's ends meanwhile. Every
    result reaches its client, nobody gets another's, and the daemon records no crash."""
    daemon = module.Daemon(root / f"run-{next(_runs)}").start()  # fresh for every run
    alice, bob = ProofClient(daemon.address, "alice"), ProofClient(daemon.address, "bob")
    try:
        for client, x in ((alice, 7), (bob, 3)):
            step(daemon, client, client.login)
            compute(daemon, client, x)
        other = ProofClient(daemon.address, "alice")  # e.g. an admin link of alice's: it ends
        try:  # its link may drop too (before its hello came): it logs in again
            step(daemon, other, other.login)
        finally:
            other.close()
        assert daemon.wait_until(lambda: daemon.recycled >= 1), "the link was never recycled"
        for client in (alice, bob):
            step(daemon, client, client.ping)
        assert [r["y"] for r in alice.results] == [49]
        assert [r["y"] for r in bob.results] == [9]
        assert alice.foreign == bob.foreign == [], "a result went to the wrong client"
        # A send on a dropped link fails (and is logged); a released response used is a crash.
        crashes = [e for e in daemon.errors if "after release" in e]
        assert crashes == [], f"the daemon crashed: {crashes}"
    finally:
        alice.close()
        bob.close()
        daemon.stop()


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
def test_every_point_may_drop_every_link(name, tmp_path):
    two_clients_work(IMPLEMENTATIONS[name], tmp_path)


def test_the_sweep_finds_the_recycle(faultline, tmp_path):
    found = faultline.sweep(
        lambda: two_clients_work(IMPLEMENTATIONS["buggy"], tmp_path), kinds=KINDS, raises=False
    )
    at_recycle = [run for run in found.failures if run.sites[0].name == "proofd.recycle"]
    assert at_recycle, found.report()  # the incident's step
    # Real threads decide some of the other failures; the one at the recycle replays.
    assert all(run.reproducible for run in at_recycle), found.report()
    assert found.complete
