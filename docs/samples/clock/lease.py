"""A lease that expires a number of seconds after it was granted."""

from __future__ import annotations

import time


class Lease:
    def __init__(self, seconds):
        self.expires = time.monotonic() + seconds

    def valid(self):
        return time.monotonic() < self.expires
