"""Reports take every thread's stack with the garbage collector off.

CPython's ``sys._current_frames()`` allocates while holding the interpreter's thread-list lock;
a GC pass started there can free a ``threading.local``, whose cleanup takes the same lock, and
the reporting thread deadlocks itself. It happened in a deadlock report of the MIDAS example.
"""

from __future__ import annotations

import gc
import sys
import threading
from types import FrameType

import pytest

from pytest_faultline.sched.runtime import Scheduler


def test_frames_are_taken_with_gc_off_and_gc_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = sys._current_frames

    def spy() -> dict[int, FrameType]:
        seen.append(gc.isenabled())
        return real()

    monkeypatch.setattr(sys, "_current_frames", spy)
    frames = Scheduler.frames(object.__new__(Scheduler))
    assert seen == [False]
    assert gc.isenabled()
    assert threading.get_ident() in frames


def test_frames_leave_a_disabled_gc_disabled() -> None:
    gc.disable()
    try:
        Scheduler.frames(object.__new__(Scheduler))
        assert not gc.isenabled()
    finally:
        gc.enable()
