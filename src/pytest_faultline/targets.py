"""Callable targets named ``"pkg.mod:Qual.name"``: resolve, wrap for one test, restore.

Used by arming, deferral and every other feature that intercepts a call. The wrapper replaces
the attribute where it is defined, exactly as ``unittest.mock.patch`` does, so code that did
``from pkg.mod import name`` before the test keeps the original (patch where it is looked up).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ._record import Record
from .errors import TargetError

__all__ = ["CallTarget", "is_call_target", "path_of", "resolve"]

TARGET_HELP = (
    "name a callable as 'package.module:Qualified.name' (for example "
    "'myapp.server:Protocol.recycle'), or arm a point name without a colon"
)

_MISSING = object()


def is_call_target(target: str) -> bool:
    return ":" in target


def path_of(func: Callable[..., Any]) -> str:
    """The ``"pkg.mod:Qual.name"`` path of a function or method, for error messages and events."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise TargetError(f"cannot find {func!r} by name (it is local or anonymous): {TARGET_HELP}")
    return f"{module}:{qualname}"


# Written out, not @dataclass: the import of the controller is on every pytest start (_record.py).
class CallTarget(Record):
    """A resolved target: the owner (module or class), the attribute, and its raw value."""

    __slots__ = __match_args__ = ("path", "owner", "attr", "raw", "inherited")
    path: str
    owner: ModuleType | type
    attr: str
    raw: Any  # as stored in the owner's __dict__ (staticmethod/classmethod kept) or inherited
    inherited: bool

    def __init__(
        self, path: str, owner: ModuleType | type, attr: str, raw: Any, inherited: bool
    ) -> None:
        self.path = path
        self.owner = owner
        self.attr = attr
        self.raw = raw
        self.inherited = inherited

    @property
    def function(self) -> Callable[..., Any]:
        raw = self.raw
        if isinstance(raw, (staticmethod, classmethod)):
            return raw.__func__
        return raw  # type: ignore[no-any-return]

    def install(self, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        """Replace the attribute with ``make_wrapper(original function)``."""
        original = self.function
        wrapper = functools.wraps(original)(make_wrapper(original))
        replacement: Any = wrapper
        if isinstance(self.raw, staticmethod):
            replacement = staticmethod(wrapper)
        elif isinstance(self.raw, classmethod):
            replacement = classmethod(wrapper)
        try:
            setattr(self.owner, self.attr, replacement)
        except (TypeError, AttributeError) as exc:
            raise TargetError(
                f"cannot wrap {self.path!r}: {exc}. Built-in types cannot be patched; arm the "
                f"Python function that calls it, or use a fault point"
            ) from None

    def restore(self) -> None:
        if self.inherited:
            # The attribute lived on a base class: remove our override rather than copy it down.
            if self.attr in vars(self.owner):
                delattr(self.owner, self.attr)
        else:
            setattr(self.owner, self.attr, self.raw)


def _import_longest(module_path: str, path: str) -> ModuleType:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise TargetError(
            f"target {path!r}: module {module_path!r} not found ({exc}); {TARGET_HELP}"
        ) from None


def resolve(path: str) -> CallTarget:
    """Resolve ``"pkg.mod:Qual.name"`` to a :class:`CallTarget`; :class:`TargetError` if not."""
    module_path, _, qualname = path.partition(":")
    if not module_path or not qualname or ":" in qualname:
        raise TargetError(f"target {path!r} is not of the form 'pkg.mod:Qual.name'; {TARGET_HELP}")
    owner: Any = _import_longest(module_path, path)
    parts = qualname.split(".")
    for i, part in enumerate(parts[:-1]):
        nxt = getattr(owner, part, _MISSING)
        if nxt is _MISSING:
            where = module_path + (":" + ".".join(parts[:i]) if i else "")
            raise TargetError(f"target {path!r}: {where!r} has no attribute {part!r}")
        owner = nxt
    attr = parts[-1]
    if not isinstance(owner, (ModuleType, type)):
        raise TargetError(
            f"target {path!r}: {'.'.join(parts[:-1])!r} is a {type(owner).__name__} instance, "
            f"not a class or module; name the method on its class"
        )
    inherited = False
    if attr in vars(owner):
        raw = vars(owner)[attr]
    else:
        raw = _MISSING
        if isinstance(owner, type):
            for base in owner.__mro__[1:]:
                if attr in vars(base):
                    raw, inherited = vars(base)[attr], True
                    break
        if raw is _MISSING:
            where = module_path + (":" + ".".join(parts[:-1]) if len(parts) > 1 else "")
            close = [n for n in dir(owner) if n.lower() == attr.lower() or attr in n][:3]
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise TargetError(f"target {path!r}: {where!r} has no attribute {attr!r}{hint}")
    if isinstance(raw, property):
        raise TargetError(
            f"target {path!r} is a property; arm its getter's function or a point inside it"
        )
    func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
    if not callable(func):
        raise TargetError(f"target {path!r} is a {type(func).__name__}, not a callable")
    if inspect.isclass(func):
        raise TargetError(
            f"target {path!r} is a class; arm its '__init__' or a method: '{path}.__init__'"
        )
    return CallTarget(path=path, owner=owner, attr=attr, raw=raw, inherited=inherited)
