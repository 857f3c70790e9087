"""The lock-order graph: edges "held -> acquired" and the cycles (inversions) they close.

Nodes are lock classes (where locks are made). Two locks of one class taken nested (account A's
lock, then account B's) are no edge between classes, since that is correct when the program
orders the objects; for those the graph keeps instance edges, and a cycle among the instances is
an inversion of its own kind. A cycle of any length is reported once, when its last edge appears,
whether or not the run deadlocked.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .. import _raw
from .._sites import Frame, LockClass, format_stack, stack_at
from ..errors import LockOrderError

if TYPE_CHECKING:
    from ._tracked import TrackedLock

__all__ = ["Edge", "Inversion", "LockGraph", "TryLock"]

CLASS_FIX = (
    "fix: take these locks in one order everywhere (for example always {first} before "
    "{second}, the order seen first), or never hold one of them while taking another"
)
INSTANCE_FIX = (
    "fix: when taking several {name} locks, order the objects by a stable key (an id, an "
    "account number) and always lock them in that order"
)


@dataclass(frozen=True)
class Edge:
    """``second`` was acquired (blocking) while ``first`` was held, by ``thread``.

    ``first_stack`` is where ``first`` was taken, ``second_stack`` where ``second`` was taken
    while holding it (innermost frame last). ``first_lock``/``second_lock`` name the lock
    objects (class name and ``#n``, the n-th lock of that class); ``test`` is the test id.
    ``str(edge)`` is ``"first -> second"`` in class names, or in object names when both locks
    are of one class.
    """

    first: LockClass
    second: LockClass
    thread: str
    first_stack: tuple[Frame, ...]
    second_stack: tuple[Frame, ...]
    first_lock: str
    second_lock: str
    first_serial: int
    second_serial: int
    test: str
    seq: int = 0  # position in the graph: the first edge of a cycle is the order to keep

    @property
    def same_class(self) -> bool:
        return self.first is self.second

    def __str__(self) -> str:
        if self.same_class:
            return f"{self.first_lock} -> {self.second_lock}"
        return f"{self.first.name} -> {self.second.name}"

    def __repr__(self) -> str:
        return f"<Edge {self} in thread {self.thread!r}>"


@dataclass
class TryLock:
    """``second`` taken with ``acquire(blocking=False)`` while ``first`` was held: recorded,
    but no edge, since a try-lock cannot wait and so cannot deadlock."""

    first: LockClass
    second: LockClass
    thread: str
    test: str
    count: int = 1

    def __str__(self) -> str:
        return f"{self.first.name} -> {self.second.name} (non-blocking, {self.count}x)"


@dataclass(frozen=True)
class Inversion:
    """A cycle in the lock-order graph: a deadlock waiting for the wrong timing.

    ``kind`` is ``"class"`` (a cycle among lock classes) or ``"instance"`` (locks of one class
    taken in orders that form a cycle among the objects). ``cycle`` names the locks in order,
    ``edges`` holds one :class:`Edge` per step with both stacks, ``thread`` closed the cycle.
    ``str(inversion)`` is the full report.
    """

    kind: Literal["class", "instance"]
    cycle: tuple[str, ...]
    edges: tuple[Edge, ...]
    locks: tuple[LockClass, ...]
    thread: str
    thread_ident: int
    test: str
    same_objects: bool

    @property
    def summary(self) -> str:
        """``a -> b -> a``."""
        return " -> ".join((*self.cycle, self.cycle[0]))

    def report(self) -> str:
        """The full report, in the manner of ThreadSanitizer's lock-order-inversion."""
        lines = [f"lock-order inversion (potential deadlock): {self.summary}"]
        if self.kind == "instance":
            lines.append(
                f"  a cycle among {len(self.cycle)} locks of one class, {self.locks[0].name}: "
                f"nesting them is fine when every thread takes them in one order, but these "
                f"objects were taken in orders that form a cycle"
            )
        else:
            lines.append(f"  a cycle among {len(self.cycle)} lock classes")
            if self.same_objects:
                lines.append(
                    "  the same lock objects were taken in every order: threads doing these "
                    "steps at the same time deadlock"
                )
            else:
                lines.append(
                    "  different lock objects of these classes were involved: threads deadlock "
                    "when they do these steps on the same objects at the same time"
                )
        where = f" in {self.test}" if self.test else ""
        lines.append(f"  the cycle closed in thread {self.thread!r}{where}")
        for edge in self.edges:
            first, second = (
                (edge.first_lock, edge.second_lock)
                if self.kind == "instance"
                else (edge.first.name, edge.second.name)
            )
            in_test = f" (test {edge.test})" if edge.test and edge.test != self.test else ""
            lines.append("")
            lines.append(
                f"  {second} acquired while holding {first}, in thread {edge.thread!r}{in_test}:"
            )
            lines.append(format_stack(edge.second_stack))
            lines.append(f"  {first} previously acquired by the same thread at:")
            lines.append(format_stack(edge.first_stack))
        lines.append("")
        lines.append("  locks in the cycle:")
        for cls in dict.fromkeys(self.locks):
            lines.append(f"    {cls.describe()}")
        if self.kind == "instance":
            lines.append("  " + INSTANCE_FIX.format(name=self.locks[0].name))
        else:
            oldest = min(self.edges, key=lambda e: e.seq)
            lines.append(
                "  " + CLASS_FIX.format(first=oldest.first.name, second=oldest.second.name)
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return f"<Inversion {self.summary} ({self.kind})>"


def _order(node: Hashable) -> tuple[object, ...]:
    if isinstance(node, LockClass):
        return (node.filename, node.lineno, node.kind, node.inside, node.name)
    return (node,)


@dataclass
class LockGraph:
    """One lock-order graph (a test's, or the session's with ``--faultline-lockdep``).

    A graph is a sink for tracked locks while registered with them; ``fail`` makes the
    acquire that closes a cycle raise :class:`~pytest_faultline.LockOrderError`.
    """

    fail: bool = False
    context: str = ""
    on_inversion: Callable[[Inversion], None] | None = None
    edges: list[Edge] = field(default_factory=list)
    inversions: list[Inversion] = field(default_factory=list)
    trylocks: list[TryLock] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._mutex = _raw.allocate_lock()
        self._known: dict[Hashable, Edge] = {}
        self._succ: dict[Hashable, set[Hashable]] = {}
        self._cycles: set[tuple[Hashable, ...]] = set()
        self._tries: dict[tuple[LockClass, LockClass], TryLock] = {}

    # -- sink protocol (called from tracked locks, with the caller's held list) ---------------

    def blocking(self, lock: TrackedLock, held: list[TrackedLock]) -> Exception | None:
        new: list[tuple[TrackedLock, Hashable]] = []
        known = self._known
        for first in held:
            if first is lock:
                continue
            key: Hashable = (
                (first.serial, lock.serial)
                if first.lock_class is lock.lock_class
                else (first.lock_class, lock.lock_class)
            )
            if key not in known:
                new.append((first, key))
        if not new:
            return None
        # Stacks are taken outside the mutex; a racing thread may take them twice, harmlessly.
        second_stack = stack_at(sys._getframe(1))
        thread = _raw.current_thread()
        stacks = [(first, key, first.acquired_stack()) for first, key in new]
        found: list[Inversion] = []
        with self._mutex:
            for first, key, first_stack in stacks:
                if key in self._known:
                    continue
                edge = Edge(
                    first=first.lock_class,
                    second=lock.lock_class,
                    thread=thread.name,
                    first_stack=first_stack,
                    second_stack=second_stack,
                    first_lock=first.name,
                    second_lock=lock.name,
                    first_serial=first.serial,
                    second_serial=lock.serial,
                    test=self.context,
                    seq=len(self.edges),
                )
                self._known[key] = edge
                self.edges.append(edge)
                assert isinstance(key, tuple)
                inversion = self._add(key[0], key[1], edge, thread.name, thread.ident or 0)
                if inversion is not None:
                    self.inversions.append(inversion)
                    found.append(inversion)
        for inversion in found:
            if self.on_inversion is not None:
                self.on_inversion(inversion)
        if found and self.fail:
            return LockOrderError(found[0].report())
        return None

    def trylock(self, lock: TrackedLock, held: list[TrackedLock]) -> None:
        with self._mutex:
            for first in held:
                if first is lock:
                    continue
                pair = (first.lock_class, lock.lock_class)
                entry = self._tries.get(pair)
                if entry is None:
                    entry = TryLock(
                        first.lock_class, lock.lock_class, _raw.current_thread().name, self.context
                    )
                    self._tries[pair] = entry
                    self.trylocks.append(entry)
                else:
                    entry.count += 1

    # -- cycles --------------------------------------------------------------------------------

    def _add(
        self, u: Hashable, v: Hashable, edge: Edge, thread: str, ident: int
    ) -> Inversion | None:
        self._succ.setdefault(u, set()).add(v)
        path = self._path(v, u)
        if path is None:
            return None
        nodes = [u, *path[:-1]]  # u -> v -> ... -> (back to u)
        # Rotated to start at the lock made first in the source, so a cycle reads the same
        # whichever edge closed it.
        start = min(range(len(nodes)), key=lambda i: _order(nodes[i]))
        nodes = nodes[start:] + nodes[:start]
        canonical = tuple(nodes)
        if canonical in self._cycles:
            return None
        self._cycles.add(canonical)
        steps = [self._known[(a, b)] for a, b in zip(nodes, [*nodes[1:], nodes[0]], strict=True)]
        kind: Literal["class", "instance"] = "instance" if edge.same_class else "class"
        if kind == "instance":
            cycle = tuple(e.first_lock for e in steps)
        else:
            cycle = tuple(e.first.name for e in steps)
        same_objects = all(
            a.second_serial == b.first_serial
            for a, b in zip(steps, [*steps[1:], steps[0]], strict=True)
        )
        return Inversion(
            kind=kind,
            cycle=cycle,
            edges=tuple(steps),
            locks=tuple(e.first for e in steps),
            thread=thread,
            thread_ident=ident,
            test=self.context,
            same_objects=same_objects,
        )

    def _path(self, start: Hashable, goal: Hashable) -> list[Hashable] | None:
        """Shortest path ``start -> ... -> goal`` over known edges (breadth first)."""
        parents: dict[Hashable, Hashable | None] = {start: None}
        todo = deque([start])
        while todo:
            node = todo.popleft()
            if node == goal:
                path = [node]
                while (prev := parents[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1]
            for nxt in self._succ.get(node, ()):
                if nxt not in parents:
                    parents[nxt] = node
                    todo.append(nxt)
        return None
