"""Where things happen, for every report: call sites, stacks, lock names, lock-factory chaining.

One module for the thread scheduler's reports (``sched/report.py``, ``sched/runtime.py``) and the
lock-order reports (``lockorder/graph.py``, ``lockorder/affinity.py``): one frame filter
(:func:`is_plumbing`), one way to print a site (:func:`site`, relative to the rootdir), one way
to name a lock (:func:`lock_name`: ``Bank._odb_lock (R1)``).

Lockdep identifies a lock by its *class*, the place in the code that made it, so that every
``Account`` object's ``_lock`` is one node of the graph however many accounts exist. Here the
class is the first frame outside ``threading``/``queue`` (a ``Condition()`` made in user code
is attributed to the user's line, not to ``threading.py``) and, when the source line assigns
the lock, the attribute it was assigned to (``self._odb_lock = threading.RLock()`` gives
``Bank._odb_lock``).

A layer that replaces ``threading.Lock``/``RLock`` while another layer's factory is installed
(the thread scheduler per run, under the lock-order watcher) must not drop that layer: the
installed factory may carry a ``__faultline_rechain__`` function that wraps the new stand-in
(:func:`rechain`).
"""

from __future__ import annotations

import ast
import linecache
import os
import queue
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

__all__ = [
    "RECHAIN",
    "Frame",
    "LockClass",
    "format_stack",
    "is_plumbing",
    "lock_class_here",
    "lock_name",
    "rechain",
    "relative",
    "set_root",
    "site",
    "stack_at",
    "stack_here",
    "user_frame",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Frames in these files are plumbing between the user's code and the lock: skipped when naming a
# lock's class and when showing where a lock was taken.
_PASS_THROUGH = frozenset({threading.__file__, queue.__file__})
_FUTURES = os.sep + os.path.join("concurrent", "futures") + os.sep
_PACKAGE_PREFIX = _PACKAGE_DIR + os.sep
STACK_LIMIT = 12
_ASCII_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")

# Report stacks end where the test runner starts (everything further out is pytest's). Its
# directories are read from the loaded modules, not imported: outside a test run (``explore()``
# from plain code) pytest is not loaded, and then no frame can be its.
_RUNNER_MODULES = ("pluggy", "_pytest")
_runner_dirs: list[tuple[str, ...]] = []


def _runner_prefixes() -> tuple[str, ...]:
    if _runner_dirs:
        return _runner_dirs[0]
    found = tuple(
        os.path.dirname(os.path.abspath(module.__file__)) + os.sep
        for module in map(sys.modules.get, _RUNNER_MODULES)
        if module is not None and module.__file__
    )
    if len(found) == len(_RUNNER_MODULES):  # both loaded: they stay where they are
        _runner_dirs.append(found)
    return found


# Frame and LockClass are plain classes with __slots__, not dataclasses: building a dataclass
# costs about a millisecond at import, and this module is on the first exploration's path.


class Frame:
    """One frame of a report stack: file, line, function and the source line."""

    __slots__ = ("filename", "function", "lineno", "source")

    def __init__(self, filename: str, lineno: int, function: str, source: str) -> None:
        self.filename = filename
        self.lineno = lineno
        self.function = function
        self.source = source

    def _key(self) -> tuple[str, int, str, str]:
        return (self.filename, self.lineno, self.function, self.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Frame(filename={self.filename!r}, lineno={self.lineno!r}, "
            f"function={self.function!r}, source={self.source!r})"
        )

    def __str__(self) -> str:
        text = f'  File "{self.filename}", line {self.lineno}, in {self.function}'
        if self.source:
            text += f"\n    {self.source}"
        return text


class LockClass:
    """A lock class: every lock made at one place in the code (compared by identity: classes
    are interned by place).

    ``name`` is the attribute or variable the lock was assigned to (``Bank._odb_lock``,
    ``lock_a``) or ``file.py:LINE`` when the source does not say. ``kind`` is ``Lock`` or
    ``RLock``; ``inside`` names the ``threading``/``queue`` object that made it for the user
    (``Condition``, ``Semaphore``, ``Queue``, ...) or is empty.
    """

    __slots__ = ("attr", "filename", "inside", "kind", "lineno", "source")

    def __init__(
        self, filename: str, lineno: int, kind: str, inside: str, attr: str | None, source: str
    ) -> None:
        self.filename = filename
        self.lineno = lineno
        self.kind = kind
        self.inside = inside
        self.attr = attr
        self.source = source

    @property
    def name(self) -> str:
        return self.attr or f"{os.path.basename(self.filename)}:{self.lineno}"

    @property
    def site(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def describe(self) -> str:
        """One line for reports: what the lock is and where it was made."""
        what = f"the {self.kind} inside a {self.inside}" if self.inside else self.kind
        text = f"{self.name}: {what} created at {self.site}"
        if self.source:
            text += f" ({self.source})"
        return text

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<LockClass {self.name} at {self.site}>"


# (code, lasti, kind) of the creating frame -> its class; classes interned by place.
_BY_FRAME: dict[tuple[CodeType, int, str], tuple[LockClass, str]] = {}
_BY_PLACE: dict[tuple[str, int, object, str, str], LockClass] = {}


def _column(code: CodeType, lasti: int) -> int | None:
    """The column of instruction ``lasti`` (3.11+), or None where Python does not record it."""
    positions = getattr(code, "co_positions", None)
    if positions is None or lasti < 0:
        return None
    for i, pos in enumerate(positions()):
        if i == lasti // 2:
            column = pos[2]
            return column if isinstance(column, int) else None
    return None


def line_at(code: CodeType, lasti: int) -> int:
    """The source line of instruction offset ``lasti`` in ``code``."""
    for start, end, line in code.co_lines():
        if start <= lasti < end and line is not None:
            return line
    return code.co_firstlineno


def lock_class_here(kind: str, depth: int) -> LockClass:
    """The class of a lock being made now; ``depth`` frames up is the factory's caller."""
    frame: FrameType | None = sys._getframe(depth + 1)
    inside = ""
    while frame is not None and is_plumbing(frame.f_code.co_filename):
        code = frame.f_code
        if code.co_name == "__init__" and not code.co_filename.startswith(_PACKAGE_PREFIX):
            # The outermost wins: a Semaphore's lock, not its Condition's.
            qualname = getattr(code, "co_qualname", None)  # 3.11+; cheaper than f_locals
            if qualname:
                inside = qualname.rsplit(".", 1)[0]
            else:
                owner = frame.f_locals.get("self")
                inside = type(owner).__name__ if owner is not None else inside
        frame = frame.f_back
    if frame is None:
        return _intern("<unknown>", 0, None, kind, "", None, "")
    code, lasti = frame.f_code, frame.f_lasti
    cached = _BY_FRAME.get((code, lasti, kind))
    if cached is not None and cached[1] == inside:
        return cached[0]
    lineno = line_at(code, lasti)
    line = linecache.getline(code.co_filename, lineno)
    source = line.strip()
    column = _column(code, lasti)
    target = _unpacked_target(line, column) if "," in source else None
    attr = _attribute(frame, target or source)
    # Two locks made on one line are two classes: told apart by column, or on 3.10 by offset.
    place = column if column is not None else ("offset", lasti)
    cls = _intern(code.co_filename, lineno, place, kind, inside, attr, source)
    _BY_FRAME[(code, lasti, kind)] = (cls, inside)
    return cls


def _intern(
    filename: str,
    lineno: int,
    column: object,
    kind: str,
    inside: str,
    attr: str | None,
    source: str,
) -> LockClass:
    key = (filename, lineno, column, kind, inside)
    cls = _BY_PLACE.get(key)
    if cls is None:
        cls = _BY_PLACE.setdefault(key, LockClass(filename, lineno, kind, inside, attr, source))
    return cls


def _unpacked_target(line: str, column: int | None) -> str | None:
    """``a, b = Lock(), RLock()``: the ``x = ...`` of the element at ``column`` (3.11+)."""
    if column is None:
        return None
    indent = len(line) - len(line.lstrip())
    try:
        tree = ast.parse(line.strip())
    except SyntaxError:
        return None
    statement = tree.body[0] if len(tree.body) == 1 else None
    if not (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Tuple)
        and isinstance(statement.value, ast.Tuple)
        and len(statement.targets[0].elts) == len(statement.value.elts)
    ):
        return None
    for target, value in zip(statement.targets[0].elts, statement.value.elts, strict=True):
        end = value.end_col_offset if value.end_col_offset is not None else -1
        if value.col_offset <= column - indent < end:
            return f"{ast.unparse(target)} = ..."
    return None


def assigned_name(source: str) -> str | None:
    """The (dotted) name a line assigns to, ``self._lock`` of ``self._lock = Lock()`` or
    ``lock`` of ``lock: Lock = Lock()``; None for anything else (``==``, ``+=``, a call).

    The regular expression ``^\\s*([A-Za-z_][\\w.]*)\\s*(?::[^=]*)?=(?!=)`` says the same;
    scanned by hand because compiling it cost a third of a millisecond on the first lock a
    process made (tests compare the two)."""
    text = source.lstrip()
    if not text or text[0] not in _ASCII_START:
        return None
    end = 1
    while end < len(text) and (text[end].isalnum() or text[end] in "_."):
        end += 1
    rest = text[end:].lstrip()
    if rest.startswith(":"):
        equals = rest.find("=")
        if equals < 0:
            return None
        rest = rest[equals:]
    if rest.startswith("=") and not rest.startswith("=="):
        return text[:end]
    return None


def _attribute(frame: FrameType, source: str) -> str | None:
    target = assigned_name(source)
    if target is None:
        return None
    code = frame.f_code
    head, _, rest = target.partition(".")
    if head == "self" and rest:
        qualname = getattr(code, "co_qualname", "")
        if "." in qualname:
            owner = qualname.rsplit(".", 1)[0].replace(".<locals>", "")
            return f"{owner.rsplit('.', 1)[-1]}.{rest}"
        self_obj = frame.f_locals.get("self")
        return f"{type(self_obj).__name__}.{rest}" if self_obj is not None else rest
    if code.co_name == "<module>":
        module = frame.f_globals.get("__name__", "")
        return f"{module.rsplit('.', 1)[-1]}.{target}" if module else target
    return target


def stack_at(
    frame: FrameType | None, lasti: int | None = None, back_lasti: int | None = None
) -> tuple[Frame, ...]:
    """The stack from ``frame`` outwards, innermost last.

    ``lasti`` pins the innermost frame's line and ``back_lasti`` its caller's, as they were when
    the stack was recorded; outer frames show where they are now. Runner and threading plumbing
    are left out; at most ``STACK_LIMIT`` frames are kept.
    """
    frames: list[Frame] = []
    pins = (lasti, back_lasti)
    runner = _runner_prefixes()
    depth = 0
    while frame is not None and len(frames) < STACK_LIMIT:
        code = frame.f_code
        filename = code.co_filename
        if runner and filename.startswith(runner):
            break
        if not is_plumbing(filename):
            pin = pins[depth] if depth < len(pins) else None
            lineno = line_at(code, pin) if pin is not None and pin >= 0 else frame.f_lineno or 0
            source = linecache.getline(code.co_filename, lineno).strip()
            frames.append(Frame(code.co_filename, lineno, code.co_name, source))
        depth += 1
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def stack_here(depth: int) -> tuple[Frame, ...]:
    """The current stack, ``depth`` frames above the caller of this function."""
    return stack_at(sys._getframe(depth + 1))


def format_stack(frames: tuple[Frame, ...], indent: str = "    ") -> str:
    if not frames:
        return f"{indent}(no frames outside the test runner)"
    return "\n".join(indent + line for f in frames for line in str(f).split("\n"))


RECHAIN = "__faultline_rechain__"


def rechain(current: Callable[..., Any], stand_in: Callable[..., Any]) -> Callable[..., Any]:
    """What a layer patching ``threading.Lock``/``RLock`` should install instead of
    ``stand_in``: ``stand_in`` itself, or, when ``current`` is a lock-order factory, a factory
    wrapping ``stand_in()``'s locks, so lock order is still watched under that layer."""
    make = getattr(current, RECHAIN, None)
    return stand_in if make is None else make(stand_in)


# -- one frame filter, one way to print a site ------------------------------------------------

_ROOT = [os.getcwd()]
_plumbing_cache: dict[str, bool] = {}


def set_root(root: str) -> str:
    """Sites in reports are shown relative to ``root`` (pytest's rootdir); returns the previous
    root, to put back when that session ends (pytester runs sessions inside sessions)."""
    previous = _ROOT[0]
    _ROOT[0] = os.path.abspath(root)
    _RELATIVE.clear()
    return previous


# absolute filename -> relative(filename) under the current root: a site is named at every
# scheduling point, and os.path.abspath was a tenth of a point's cost.
_RELATIVE: dict[str, str] = {}


def relative(filename: str) -> str:
    """``filename`` relative to the rootdir when it is below it, else as it is."""
    shown = _RELATIVE.get(filename)
    if shown is None:
        path = os.path.abspath(filename)
        root = _ROOT[0] + os.sep
        shown = path[len(root) :] if path.startswith(root) else filename
        if os.path.isabs(filename):  # a relative one depends on the working directory
            _RELATIVE[filename] = shown
    return shown


def is_plumbing(filename: str) -> bool:
    """Frames between the user's code and a primitive: pytest-faultline's own, ``threading``,
    ``queue`` and ``concurrent.futures``. Left out of sites and stacks."""
    known = _plumbing_cache.get(filename)
    if known is None:
        known = (
            filename in _PASS_THROUGH
            or filename.startswith(_PACKAGE_PREFIX)
            or os.path.abspath(filename).startswith(_PACKAGE_PREFIX)
            or _FUTURES in filename
        )
        _plumbing_cache[filename] = known
    return known


def user_frame(depth: int = 2) -> FrameType | None:
    """The innermost frame ``depth`` up that is not plumbing (:func:`is_plumbing`)."""
    try:
        frame: FrameType | None = sys._getframe(depth)
    except ValueError:
        return None
    while frame is not None and is_plumbing(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def site(frame: FrameType | None) -> str:
    """``path:line`` of ``frame``, the path relative to the rootdir; ``?`` without a frame."""
    if frame is None:
        return "?"
    return f"{relative(frame.f_code.co_filename)}:{frame.f_lineno}"


LOCK_LETTERS = {
    "Lock": "L",
    "RLock": "R",
    "Condition": "C",
    "Semaphore": "S",
    "BoundedSemaphore": "S",
    "Event": "E",
    "Barrier": "B",
}


def lock_name(name: str | None, kind: str, number: int) -> str:
    """A lock (or other primitive) in every report: the attribute or variable it was assigned
    to and a short id by kind and number, ``Bank._odb_lock (R1)``; just ``R1`` without a name."""
    label = f"{LOCK_LETTERS.get(kind, kind[:1].upper())}{number}"
    return f"{name} ({label})" if name else label
