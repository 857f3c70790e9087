"""A stand-in for a server object that must only be used from the thread that made it."""

from __future__ import annotations


class Server:
    def __init__(self):
        self.processed = 0

    def process(self):
        self.processed += 1


def serve(server):
    server.process()
