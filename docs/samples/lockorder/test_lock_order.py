"""Lock-order checking: the two orders never overlap in this run, yet the cycle is caught."""

from __future__ import annotations

import threading

import pytest

from pytest_faultline import LockOrderError


class Store:
    def __init__(self):
        self._odb_lock = threading.RLock()
        self._msg_lock = threading.Lock()
        self.odb = {}
        self.log = []

    def write(self, key, value):
        with self._odb_lock:
            self.odb[key] = value
            with self._msg_lock:
                self.log.append(f"wrote {key}")

    def message(self, text):
        with self._msg_lock:
            self.log.append(text)
            with self._odb_lock:  # the reverse order: a deadlock waiting to happen
                self.odb["last_message"] = text


@pytest.mark.xfail(raises=LockOrderError, strict=True, reason="msg -> odb closes a cycle")
@pytest.mark.faultline("lock_order")
def test_store_lock_order():
    store = Store()
    writer = threading.Thread(target=store.write, args=("run", 1))
    writer.start()
    writer.join(5)
    store.message("run started")  # raises LockOrderError here
