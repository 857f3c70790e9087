"""The tutorial's first fault: the naive writer fails, the retrying one survives."""

from __future__ import annotations

import pytest
from app_store import Store, save_all, save_all_retrying

from pytest_faultline import actions

ITEMS = {"a": 1, "b": 2, "c": 3}


@pytest.mark.xfail(raises=ConnectionError, strict=True, reason="the naive writer gives up")
def test_naive_writer_loses_data(faultline):
    faultline.arm("store.write", ConnectionError, after=1, times=1)  # the 2nd write fails once
    save_all(Store(), ITEMS)


def test_retrying_writer_survives(faultline):
    faultline.arm("store.write", ConnectionError, after=1, times=1)
    store = Store()
    save_all_retrying(store, ITEMS)
    assert store.data == ITEMS
    assert faultline.hits("store.write") == 4  # three writes and one retry


@pytest.mark.faultline("flaky_store", failures=2)
def test_with_a_scenario(faultline):
    store = Store()
    save_all_retrying(store, ITEMS)
    assert store.data == ITEMS


def test_a_slow_write_is_just_slow(faultline):
    faultline.arm("store.write", actions.Delay(0.001), times=1)
    store = Store()
    save_all(store, ITEMS)
    assert store.data == ITEMS
