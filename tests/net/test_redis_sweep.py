"""The sweep over redis-py against a real ``redis-server``, through a named proxy: with no
``after_bytes=`` or toxic placed by hand, the sweep finds the one request whose lost reply makes
redis-py's default retry apply ``INCR`` twice, and an idempotent write survives every lost reply
(the reply-lost how-to, found instead of placed). Skips when redis-server is not on PATH."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pytest_faultline.controller import Faultline
from pytest_faultline.sweep.api import Sweep

from .test_redis_retry import INCR_ONCE, key, redis, server_value

__all__ = ["key"]  # the fixture, shared with the retry tests (redis_server is the conftest's)


@pytest.fixture
def fl(request: pytest.FixtureRequest) -> Iterator[Faultline]:
    controller = Faultline(seed=19, nodeid=request.node.nodeid)
    yield controller
    controller.close()


def reset(redis_server: tuple[str, int], key: str) -> None:
    """Fresh state for each run, made on a direct connection: the counter and the request id
    gone, the script loaded (so the proxied client sends the same bytes in every run)."""
    direct = redis.Redis(*redis_server)
    try:
        direct.delete(key, f"{key}:done")
        direct.script_load(INCR_ONCE)
    finally:
        direct.close()


def sweep_incr(
    fl: Faultline, redis_server: tuple[str, int], key: str, *, idempotent: bool
) -> Callable[[], Sweep]:
    proxy = fl.proxy(redis_server, name="redis")

    def body() -> None:
        reset(redis_server, key)
        client = redis.Redis(*proxy.listen)  # redis-py's defaults: 3 retries
        try:
            if idempotent:
                assert client.register_script(INCR_ONCE)(keys=[key, f"{key}:done"]) == 1
            else:
                client.incr(key)
            assert server_value(redis_server, key) == 1, "the increment was applied twice"
        finally:
            client.close()

    return lambda: fl.sweep(body, kinds=["reply_lost", "truncate"], raises=False)


def test_the_sweep_finds_the_request_whose_lost_reply_is_applied_twice(
    fl: Faultline, redis_server: tuple[str, int], key: str
) -> None:
    found = sweep_incr(fl, redis_server, key, idempotent=False)()
    ups = [s for s in found.sites if s.where == "proxy" and s.op == "up"]
    assert len(ups) >= 2  # the connection's handshake, then INCR
    failed = {(r.sites[0].describe(), found.kinds[r.faults[0].kind]) for r in found.failures}
    incr = ups[-1].describe()
    assert (incr, "reply_lost") in failed, found.report()
    # Besides: a cut of the downstream chunk that holds INCR's reply is a lost reply too. Where
    # that chunk starts depends on how redis-server's replies to the pipelined handshake and to
    # INCR were split into reads (timing), so it is a site of its own in some runs only.
    others = failed - {(incr, "reply_lost")}
    assert all(kind == "truncate" and " down@" in site for site, kind in others), others
    for failure in found.failures:
        assert "applied twice" in str(failure.failure)
    lost = next(r for r in found.failures if r.sites[0].describe() == incr)
    assert lost.reproducible
    # Every other lost reply (the handshake's) and every cut of a request is retried safely.
    assert all(r.outcome == "pass" for r in found.singles if r not in found.failures)
    assert len(found.failures) <= 2, found.report()


def test_an_idempotent_write_survives_every_lost_reply(
    fl: Faultline, redis_server: tuple[str, int], key: str
) -> None:
    found = sweep_incr(fl, redis_server, key, idempotent=True)()
    lost = [r for r in found.singles if found.kinds[r.faults[0].kind] == "reply_lost"]
    assert len(lost) >= 2
    assert found.passed, found.report()
    assert all(r.outcome == "pass" for r in found.singles), found.report()
