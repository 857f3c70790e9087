"""The failing test whose report the README and the tutorial show (tests/test_docs_failure.py
runs it and checks the shown output is what it prints)."""

from __future__ import annotations

from inventory import Store, restock


def test_restock_survives_a_flaky_store(faultline):
    faultline.arm("store.write", ConnectionError("store down"), after=1)  # down after 1 write
    store = Store()
    restock(store, {"apples": 3, "pears": 5, "plums": 8})
    assert store.data == {"apples": 3, "pears": 5, "plums": 8}
