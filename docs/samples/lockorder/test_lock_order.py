"""Lock-order checking: the two orders never overlap in this run, yet the cycle is caught."""

from __future__ import annotations

import threading

import pytest

from pytest_faultline import LockOrderError


class Store:
    def __init__(self):
        self._odb_lock = threading.RLock()
        self._msg_lock = threading.Lock()

    def write(self):
        with self._odb_lock:
            with self._msg_lock:
                pass

    def message(self):
        with self._msg_lock:
            with self._odb_lock:  # the reverse order: a deadlock waiting to happen
                pass


@pytest.mark.xfail(raises=LockOrderError, strict=True, reason="msg -> odb closes a cycle")
@pytest.mark.faultline("lock_order")
def test_store_lock_order():
    store = Store()
    writer = threading.Thread(target=store.write)
    writer.start()
    writer.join(5)
    store.message()  # raises LockOrderError here
