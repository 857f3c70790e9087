"""Lock-order checking that records instead of failing, in pytest and outside it."""

from __future__ import annotations

import threading

import pytest

from pytest_faultline.lockorder import LockOrder


class Store:
    """Every path takes ``_odb_lock`` before ``_msg_lock``."""

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
        with self._odb_lock:
            self.odb["last_message"] = text
            with self._msg_lock:
                self.log.append(text)


def run_the_system():
    store = Store()
    writer = threading.Thread(target=store.write, args=("run", 1))
    writer.start()
    writer.join(5)
    store.message("run started")


@pytest.mark.faultline("lock_order", fail=False)
def test_orders(faultline):
    run_the_system()
    order = faultline.lock_order
    assert [str(e) for e in order.edges] == ["Store._odb_lock -> Store._msg_lock"]
    assert order.inversions == []


def test_outside_pytest(capsys):
    # [outside-pytest]
    with LockOrder() as order:
        run_the_system()
    print(order.report())
    # [/outside-pytest]
    assert order.inversions == []
    assert capsys.readouterr().out.strip()
