"""A small daemon for the fail-a-call samples: a database client, a recycle step and a worker."""

from __future__ import annotations

import threading

from pytest_faultline import point


class Client:
    def query(self, sql):
        return [sql]


class Daemon:
    def __init__(self):
        self.client_connected = True
        self.sent = []
        self.kept = []  # results kept for a client that reconnects
        self._worker = None

    def recycle(self):
        point("daemon.recycle")  # one fault point per recycle

    def start_job(self):
        self._worker = threading.Thread(target=self.send, args=(42,), name="worker")
        self._worker.start()

    def send(self, result):
        point("daemon.send")
        if self.client_connected:
            self.sent.append(result)
        else:  # the client went away while the worker computed: keep the result for it
            self.kept.append(result)

    def drop_client(self):
        self.client_connected = False

    def join(self):
        if self._worker is not None:
            self._worker.join(5)
