"""The extending page's tests: the naive cache keeps garbage, the checked one survives."""

from __future__ import annotations

import pytest
from cache import get_checked, get_naive

from conftest import LIFECYCLE, Count


@pytest.mark.faultline("garbage_replies")
@pytest.mark.xfail(raises=AssertionError, strict=True, reason="the naive cache keeps garbage")
def test_naive_cache_keeps_garbage(faultline):
    assert get_naive({}, "k") == b"value of k"


@pytest.mark.faultline("garbage_replies")
def test_checked_cache_refetches(faultline):
    cache = {}
    assert get_checked(cache, "k") == b"value of k"
    assert cache == {"k": b"value of k"}
    assert [e.kind.value for e in faultline.events] == ["scenario", "action"]
    assert faultline.events[1].is_fault


def test_count_action_lets_the_call_go_on(faultline):
    counter = Count()
    faultline.arm("cache:fetch", counter)
    get_naive({}, "a")
    get_naive({}, "b")
    assert counter.seen == 2


def test_lifecycle_order_of_the_previous_scenario_tests():
    # Each scenario test above ran: body wrapper around the body; then, at teardown, wake
    # handlers first, then the undo stack newest first (the scenario's own teardown was
    # pushed last, so it runs first, before the undo step it pushed earlier).
    one = ["body starts", "body ends", "wake", "scenario teardown", "undo"]
    assert one + one == LIFECYCLE
