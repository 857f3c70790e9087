"""The lock-order watcher: a context manager first, the ``lock_order`` scenario and the
``faultline.lock_order`` service second."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from ..errors import FaultlineError
from . import _tracked
from .graph import Edge, Inversion, LockGraph, TryLock

__all__ = ["LockOrder"]


class LockOrder:
    """Watches the order in which threads take locks made while it is active.

    While started, ``threading.Lock()`` and ``threading.RLock()`` (and so the locks inside new
    ``Condition``, ``Semaphore``, ``Event`` and ``queue.Queue`` objects) return tracked locks;
    every blocking acquire made while holding other tracked locks adds edges held -> acquired,
    and a cycle of edges is an :class:`Inversion`. With ``fail=True`` the acquire that closes a
    cycle raises :class:`~pytest_faultline.LockOrderError` instead of taking the lock.

    ``.edges``, ``.inversions`` and ``.trylocks`` are for asserts; ``report()`` prints every
    inversion. Use it as ``with LockOrder() as order: ...`` or through the ``faultline`` fixture
    (``faultline.lock_order``, the ``lock_order`` scenario).
    """

    def __init__(
        self,
        *,
        fail: bool = False,
        context: str = "",
        on_inversion: Callable[[Inversion], None] | None = None,
    ) -> None:
        self.graph = LockGraph(fail=fail, context=context, on_inversion=on_inversion)
        self._installation: _tracked.Installation | None = None

    @property
    def fail(self) -> bool:
        """Whether closing a cycle raises :class:`~pytest_faultline.LockOrderError`."""
        return self.graph.fail

    @fail.setter
    def fail(self, value: bool) -> None:
        self.graph.fail = value

    @property
    def active(self) -> bool:
        return self._installation is not None

    @property
    def edges(self) -> list[Edge]:
        """Every edge seen, in order: ``str(edge)`` is ``"first -> second"``."""
        return list(self.graph.edges)

    @property
    def inversions(self) -> list[Inversion]:
        """Every cycle found, in order; ``str(inversion)`` is the full report."""
        return list(self.graph.inversions)

    @property
    def trylocks(self) -> list[TryLock]:
        """Non-blocking acquires made while holding a lock (recorded, never edges)."""
        return list(self.graph.trylocks)

    def report(self) -> str:
        """Every inversion's report, or a line saying there is none."""
        if not self.graph.inversions:
            return f"no lock-order inversion among {len(self.graph.edges)} edges"
        return "\n\n".join(inv.report() for inv in self.graph.inversions)

    def start(self) -> LockOrder:
        """Track locks made from now on and watch the order they are taken in."""
        if self._installation is not None:
            raise FaultlineError("this LockOrder watcher is already started; stop() it first")
        self._installation = _tracked.Installation()
        _tracked.add_sink(self.graph)
        return self

    def stop(self) -> None:
        """Stop watching and put back exactly the ``threading.Lock``/``RLock`` found at start.

        Locks made while active keep working (as plain locks once no watcher is active).
        """
        installation, self._installation = self._installation, None
        if installation is None:
            return
        _tracked.remove_sink(self.graph)
        installation.restore()

    def __enter__(self) -> LockOrder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return (
            f"<LockOrder {state} fail={self.fail} edges={len(self.graph.edges)} "
            f"inversions={len(self.graph.inversions)}>"
        )
