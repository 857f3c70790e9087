"""redis-py against a real ``redis-server`` through the fault proxy: the reply-lost double apply
of its default retry, and two ways to survive it (the how-to "test your client's retry logic").

The tests start their own ``redis-server`` on 127.0.0.1 (a free port, no persistence) when it is
on PATH, and skip otherwise with a reason that says how to enable them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from pytest_faultline import EventKind, Faultline

redis = pytest.importorskip(
    "redis", reason="redis-py is not installed: pip install redis (it is in the 'test' extra)"
)


@pytest.fixture
def key(request: pytest.FixtureRequest, redis_server: tuple[str, int]) -> Iterator[str]:
    """A key of this test's own, deleted before and after."""
    name = f"faultline:{request.node.name}"
    direct = redis.Redis(*redis_server)
    direct.delete(name, f"{name}:done")
    yield name
    direct.delete(name, f"{name}:done")
    direct.close()


def reset_key(redis_server: tuple[str, int], key: str) -> None:
    direct = redis.Redis(*redis_server)
    try:
        direct.delete(key)
    finally:
        direct.close()


def server_value(redis_server: tuple[str, int], key: str) -> int:
    direct = redis.Redis(*redis_server)
    try:
        return int(direct.get(key) or 0)
    finally:
        direct.close()


# start: default-retry
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="the retry applies INCR twice")
def test_default_retry_applies_incr_twice(
    faultline: Faultline, redis_server: tuple[str, int], key: str
) -> None:
    proxy = faultline.proxy(redis_server)
    client = redis.Redis(*proxy.listen)  # redis-py's defaults: 3 retries on connection errors
    try:
        client.ping()  # connected (and its handshake done) before the fault
        proxy.add_toxic("reply_lost")  # the next reply never arrives
        value = client.incr(key)  # the retry gets an answer on a new connection...
        assert server_value(redis_server, key) == 1, f"client saw {value}"  # ... the server: 2
    finally:
        client.close()


# end: default-retry


# start: no-retry
def test_without_retry_the_error_says_the_outcome_is_unknown(
    faultline: Faultline, redis_server: tuple[str, int], key: str
) -> None:
    proxy = faultline.proxy(redis_server)
    client = redis.Redis(*proxy.listen, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0))
    try:
        client.ping()
        proxy.add_toxic("reply_lost")
        with pytest.raises(redis.exceptions.ConnectionError):
            client.incr(key)  # the caller learns that it cannot know
        assert server_value(redis_server, key) == 1  # applied once, never twice
    finally:
        client.close()


# end: no-retry


# start: idempotent
INCR_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', 60) then
    return redis.call('INCR', KEYS[1])
end
return tonumber(redis.call('GET', KEYS[1]))
"""


def test_an_idempotent_write_survives_the_default_retry(
    faultline: Faultline, redis_server: tuple[str, int], key: str
) -> None:
    proxy = faultline.proxy(redis_server)
    client = redis.Redis(*proxy.listen)  # default retries kept
    incr_once = client.register_script(INCR_ONCE)
    try:
        client.ping()
        client.script_load(INCR_ONCE)  # loaded before the fault: EVALSHA is one round trip
        proxy.add_toxic("reply_lost")
        # The request id (here ":done") makes the retried write a no-op on the server.
        assert incr_once(keys=[key, f"{key}:done"]) == 1
        assert server_value(redis_server, key) == 1
        assert any("reply lost" in e.detail for e in faultline.events)  # the fault did fire
    finally:
        client.close()


# end: idempotent


def test_the_double_apply_replays_identically(
    faultline: Faultline, redis_server: tuple[str, int], key: str
) -> None:
    """The reply-lost cut does not depend on timing: 20 runs, 20 double applies, each with one
    cut of the same request (the same upstream byte offsets). The downstream offset is left
    out: it counts redis-server's HELLO reply, which carries the server's connection id."""
    outcomes = set()
    for _ in range(20):
        proxy = faultline.proxy(redis_server)
        client = redis.Redis(*proxy.listen)
        try:
            reset_key(redis_server, key)
            client.ping()
            proxy.add_toxic("reply_lost")
            client.incr(key)
            applied = server_value(redis_server, key)
        finally:
            client.close()
            proxy.close()
        cuts = tuple(
            re.findall(r"reply lost on connection \d+: .*\(upstream offset \d+\.\.\d+\)", e.detail)
            for e in faultline.events
            if e.name == proxy.name and e.kind == EventKind.TOXIC
        )
        outcomes.add((applied, str(cuts)))
    assert len(outcomes) == 1, outcomes
    ((applied, cuts_text),) = outcomes
    assert applied == 2
    assert cuts_text.count("reply lost") == 1
