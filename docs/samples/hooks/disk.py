"""A disk writer with a fault point, for the hooks samples."""

from __future__ import annotations

from pytest_faultline import point


def write(log, line):
    point("disk.write")
    log.append(line)
