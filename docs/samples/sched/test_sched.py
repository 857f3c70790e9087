"""Races found by the thread scheduler: the buggy code fails in some schedule, the fixed passes."""

from __future__ import annotations

import threading

import pytest
from accounts import Accounts, FixedAccounts
from cache import Cache, FixedCache
from stats import FixedStats, Stats


def run_threads(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)


@pytest.mark.xfail(raises=AssertionError, strict=True, reason="a schedule loses the update")
@pytest.mark.faultline("thread_preemption", runs=200)
def test_concurrent_transfers():
    accounts = Accounts({"a": 10, "b": 0})  # fresh for every schedule
    threads = [threading.Thread(target=accounts.transfer_all, args=("a", "b")) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert accounts.balances() == {"a": 0, "b": 10}


@pytest.mark.faultline("thread_preemption", runs=200)
def test_fixed_transfers():
    accounts = FixedAccounts({"a": 10, "b": 0})
    run_threads([threading.Thread(target=accounts.transfer_all, args=("a", "b")) for _ in range(2)])
    assert accounts.balances() == {"a": 0, "b": 10}


@pytest.mark.parametrize(
    "make_cache",
    [
        FixedCache,
        pytest.param(Cache, marks=pytest.mark.xfail(raises=AssertionError, strict=True)),
    ],
)
@pytest.mark.faultline("thread_preemption", preempt="lines", modules=["cache"])
def test_lazy_connection_opened_once(make_cache):
    cache = make_cache()
    run_threads([threading.Thread(target=cache.connection) for _ in range(2)])
    assert cache.opened == 1


@pytest.mark.parametrize(
    "make_stats",
    [
        FixedStats,
        pytest.param(Stats, marks=pytest.mark.xfail(raises=AssertionError, strict=True)),
    ],
)
@pytest.mark.faultline("thread_preemption", preempt="bytecode", modules=["stats"])
def test_every_request_is_counted(make_stats):
    stats = make_stats()
    run_threads([threading.Thread(target=stats.record) for _ in range(2)])
    assert stats.requests == 2
