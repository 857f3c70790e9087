"""Failures found in threads the test body may never hear about.

A ``LockOrderError`` or ``ThreadAffinityError`` is raised in the thread that did the wrong
thing. When that is a worker, its exception may be caught by the worker's own code or only
printed by ``threading.excepthook``; the test must fail anyway. So every such failure is also
kept here and raised again in the test's own thread when the body returns (or, for failures
that come later, at teardown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import _raw
from .._context import ServiceKey

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["Verdict", "verdict"]

__tracebackhide__ = True  # pytest leaves this module's frames out of failure tracebacks

SERVICE_KEY: ServiceKey[Verdict] = ServiceKey("lockorder-verdict")
WORKER_NOTE = (
    "raised in thread {thread!r} while the test ran; the test fails even if that thread's "
    "exception was caught or lost"
)


class Verdict:
    """Pending failures of one test, raised in the test's thread."""

    def __init__(self, faultline: FaultContext) -> None:
        self._faultline = faultline
        self._mutex = _raw.allocate_lock()
        self._pending: list[tuple[int, str, type[Exception], str]] = []
        self._body_ident = _raw.get_ident()  # the fixture runs in the thread that runs the body
        self._wrapping = False
        faultline.undo.push(self._at_teardown, "fail for errors found in other threads")

    def add(self, ident: int, thread: str, error_type: type[Exception], message: str) -> None:
        """Remember a failure raised in thread ``ident``."""
        with self._mutex:
            self._pending.append((ident, thread, error_type, message))

    def wrap_body(self) -> None:
        """Check after the test body returns (once per test; call before the body starts)."""
        if not self._wrapping:
            self._wrapping = True
            self._faultline.wrap_body(self._run)

    def _take(self, body_only: bool) -> list[tuple[int, str, type[Exception], str]]:
        # Failures raised in the body's own thread reached the body, which either let them fail
        # the test or handled them on purpose (pytest.raises); only other threads' are raised.
        with self._mutex:
            taken = [p for p in self._pending if not body_only or p[0] != self._body_ident]
            self._pending = [p for p in self._pending if p not in taken]
        return taken

    def _error(self, taken: list[tuple[int, str, type[Exception], str]]) -> Exception:
        _ident, thread, error_type, message = taken[0]
        more = f"\n(and {len(taken) - 1} more such errors)" if len(taken) > 1 else ""
        return error_type(f"{WORKER_NOTE.format(thread=thread)}:\n{message}{more}")

    def _run(self, call: Callable[[], object]) -> object:
        self._body_ident = _raw.get_ident()
        try:
            result = call()
        except BaseException as exc:
            # The body re-raising a worker's own error (from a future, a result list) has
            # delivered it already.
            taken = [
                p
                for p in self._take(body_only=True)
                if not (isinstance(exc, p[2]) and str(exc) == p[3])
            ]
            if taken:
                raise self._error(taken)  # noqa: B904  - the body's error stays as the context
            raise
        taken = self._take(body_only=True)
        if taken:
            raise self._error(taken)
        return result

    def _at_teardown(self) -> None:
        taken = self._take(body_only=True)
        if taken:
            import pytest

            error = self._error(taken)
            pytest.fail(f"{type(error).__name__}: {error}", pytrace=False)


def verdict(faultline: FaultContext) -> Verdict:
    """The test's single :class:`Verdict`."""
    return faultline.service(SERVICE_KEY, Verdict)
