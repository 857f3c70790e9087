"""A sweep run fails when a thread of the body dies of an exception, not only when the body
raises: a server thread killed by a fault (a close that reports a reset, a write that fails) is
the run's failure, named by the run's fault, instead of a warning at the end of the test that
points at no run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .. import _raw

__all__ = ["ThreadFailure", "thread_failures"]


class ThreadFailure(list[BaseException]):
    """The exceptions that ended threads during one run, in order."""


@contextmanager
def thread_failures() -> Iterator[ThreadFailure]:
    """While the block runs, a thread that dies of an exception is recorded here (and not
    reported to the previous ``threading.excepthook``: the run is its failure)."""
    caught = ThreadFailure()
    lock = _raw.allocate_lock()
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            previous(args)
            return
        exc = args.exc_value
        name = args.thread.name if args.thread is not None else "?"
        exc.add_note(f"faultline sweep: raised in thread {name!r}, which it ended")
        with lock:
            caught.append(exc)

    threading.excepthook = hook
    try:
        yield caught
    finally:
        if threading.excepthook is hook:
            threading.excepthook = previous
