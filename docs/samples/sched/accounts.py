"""Accounts whose transfer reads and writes a balance under two separate holds of the lock."""

from __future__ import annotations

import threading


class Accounts:
    def __init__(self, balances):
        self._lock = threading.Lock()
        self._balances = dict(balances)

    def transfer_all(self, source, dest):
        with self._lock:
            amount = self._balances[source]
        # the bug: another thread can read the same balance here
        with self._lock:
            self._balances[source] = 0
            self._balances[dest] += amount

    def balances(self):
        with self._lock:
            return dict(self._balances)


class FixedAccounts(Accounts):
    def transfer_all(self, source, dest):
        with self._lock:  # read and write under one hold
            amount = self._balances[source]
            self._balances[source] = 0
            self._balances[dest] += amount
