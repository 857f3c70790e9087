"""Thread affinity: objects that must be used from one thread only.

``confine(obj)`` swaps the object's class for a subclass that checks, on every method call and
attribute write, that the calling thread owns the object; every reference to the object is
guarded, not just one. Objects whose class cannot be swapped (built-in and extension types) get
a guarding proxy instead, and only uses through the proxy are checked. Everything is undone when
the watcher closes: classes swapped back, ``__init__`` wrappers removed.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _raw
from .._sites import Frame, format_stack, stack_at
from ..errors import FaultlineError, ScenarioError, ThreadAffinityError

__all__ = ["Affinity", "ConfinedProxy", "Confinement"]

AFFINITY_FIX = (
    "use it only from its owner thread (hand the work to that thread, e.g. through a queue), "
    "or hand it over explicitly with faultline.transfer(obj, thread)"
)
# Special methods that are uses of the object (len(obj), obj[k], with obj, ...); the others
# (__repr__, __eq__, __hash__, __del__, ...) stay unchecked so that logging, asserts and the
# garbage collector may touch the object from any thread.
GUARDED_DUNDERS = (
    "__call__",
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__len__",
    "__iter__",
    "__next__",
    "__contains__",
    "__enter__",
    "__exit__",
    "__aenter__",
    "__aexit__",
    "__iadd__",
    "__isub__",
)


Allowed = tuple["threading.Thread | str", ...]


def check_allow(allow: object) -> Allowed:
    """``allow`` as a tuple of threads or thread names; FaultlineError for anything else."""
    if allow is None:
        return ()
    items = (allow,) if isinstance(allow, (str, threading.Thread)) else allow
    if not isinstance(items, (list, tuple, set, frozenset)) or not all(
        isinstance(t, (str, threading.Thread)) for t in items
    ):
        raise FaultlineError(
            f"allow= takes threads or thread names that may also use the object, such as "
            f"allow=[worker] or allow=['cas-server'], got {allow!r}"
        )
    return tuple(items)


@dataclass
class Confinement:
    """Who owns a confined object and where it was made (or confined)."""

    type_name: str
    owner_ident: int | None
    owner_name: str
    owner_thread: threading.Thread | None
    origin: str  # "created" or "confined"
    stack: tuple[Frame, ...]
    on_violation: Callable[[ThreadAffinityError], None] | None
    allow: Allowed = ()  # other threads that may use it too: Thread objects or thread names

    def allowed(self) -> bool:
        ident = self.owner_ident
        if ident is None and self.owner_thread is not None:
            ident = self.owner_ident = self.owner_thread.ident  # handed over before it started
        if ident == _raw.get_ident():
            return True
        if not self.allow:
            return False
        here = _raw.current_thread()
        return any(t is here or t == here.name for t in self.allow)

    def violation(self, what: str) -> ThreadAffinityError:
        here = _raw.current_thread().name
        where = self.stack[-1] if self.stack else None
        at = f" at {where.filename}:{where.lineno}" if where else ""
        message = (
            f"{self.type_name} object is confined to thread {self.owner_name!r} but thread "
            f"{here!r} {what}. It was {self.origin}{at}:\n{format_stack(self.stack)}\n"
            f"Fix: {AFFINITY_FIX}"
        )
        error = ThreadAffinityError(message)
        if self.on_violation is not None:
            self.on_violation(error)
        return error


# id(obj) -> its confinement. Entries leave with the object (weakref) or at undo.
_CONFINED: dict[int, Confinement] = {}
_GUARD_CLASSES: dict[type, type] = {}


def _state(obj: object) -> Confinement | None:
    return _CONFINED.get(id(obj))


_METHOD_TYPES = (types.FunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)


def _guard_class(cls: type) -> type:
    guard = _GUARD_CLASSES.get(cls)
    if guard is not None:
        return guard
    base_setattr: Any = cls.__setattr__
    base_delattr: Any = cls.__delattr__

    def __setattr__(self: Any, name: str, value: Any) -> None:
        state = _CONFINED.get(id(self))
        if state is not None and not state.allowed():
            raise state.violation(f"set its attribute {name!r}")
        base_setattr(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        state = _CONFINED.get(id(self))
        if state is not None and not state.allowed():
            raise state.violation(f"deleted its attribute {name!r}")
        base_delattr(self, name)

    namespace: dict[str, Any] = {
        "__slots__": (),
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    # Every method is checked when it is *called*, so a bound method fetched on the owner
    # thread and run elsewhere (Thread(target=server.process)) is caught too.
    for klass in reversed(cls.__mro__[:-1]):  # object's methods are not the object's own
        for name, raw in vars(klass).items():
            if name.startswith("__") and name not in GUARDED_DUNDERS:
                continue
            if isinstance(raw, _METHOD_TYPES):
                namespace[name] = _guarded_method(cls, name, raw)
    try:
        guard = types.new_class(cls.__name__, (cls,), exec_body=lambda ns: ns.update(namespace))
    except TypeError:
        raise TypeError(f"cannot subclass {cls!r}") from None  # confine() falls back to a proxy
    guard.__faultline_guard__ = True  # type: ignore[attr-defined]
    _GUARD_CLASSES[cls] = guard
    return guard


def _guarded_method(cls: type, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _CONFINED.get(id(self))
        if state is not None and not state.allowed():
            raise state.violation(f"called its method {name!r}")
        # Looked up at call time: a test may monkeypatch the class after a guard was made.
        return getattr(cls, name)(self, *args, **kwargs)

    guarded.__name__ = name
    guarded.__qualname__ = getattr(method, "__qualname__", name)
    guarded.__doc__ = method.__doc__
    guarded.__wrapped__ = method  # type: ignore[attr-defined]
    return guarded


class ConfinedProxy:
    """Stands in for a confined object whose class cannot be swapped (a built-in type).

    Attribute reads and method calls go to the object after the same check; only uses through
    the proxy are guarded.
    """

    __slots__ = ("__weakref__", "_faultline_target")

    def __init__(self, target: object) -> None:
        object.__setattr__(self, "_faultline_target", target)

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "_faultline_target")
        value = getattr(target, name)
        if not callable(value):
            return value
        key = id(self)

        def checked(*args: Any, **kwargs: Any) -> Any:
            state = _CONFINED.get(key)
            if state is not None and not state.allowed():
                raise state.violation(f"called its method {name!r}")
            return value(*args, **kwargs)

        return checked

    def __setattr__(self, name: str, value: Any) -> None:
        state = _CONFINED.get(id(self))
        if state is not None and not state.allowed():
            raise state.violation(f"set its attribute {name!r}")
        setattr(object.__getattribute__(self, "_faultline_target"), name, value)

    def __repr__(self) -> str:
        return f"<confined {object.__getattribute__(self, '_faultline_target')!r}>"


def _proxy_dunder(name: str) -> Callable[..., Any]:
    def forward(self: ConfinedProxy, *args: Any, **kwargs: Any) -> Any:
        state = _CONFINED.get(id(self))
        if state is not None and not state.allowed():
            raise state.violation(f"called its method {name!r}")
        target = object.__getattribute__(self, "_faultline_target")
        return getattr(target, name)(*args, **kwargs)

    forward.__name__ = name
    return forward


for _name in GUARDED_DUNDERS:
    setattr(ConfinedProxy, _name, _proxy_dunder(_name))
del _name


class Affinity:
    """A test's confined objects and wrapped constructors, undone by :meth:`close`."""

    def __init__(self, on_violation: Callable[[ThreadAffinityError], None] | None = None) -> None:
        self.on_violation = on_violation
        self._mutex = _raw.allocate_lock()
        # id -> (weak or strong reference, original class or None for a proxy)
        self._objects: dict[int, tuple[Callable[[], object | None], type | None]] = {}
        self._inits: list[tuple[type, object]] = []
        self.violations: list[ThreadAffinityError] = []

    def confine(
        self, obj: object, *, origin: str = "confined", depth: int = 0, allow: Allowed = ()
    ) -> Any:
        """Confine ``obj`` to the calling thread; returns ``obj`` (or a guarding proxy).

        ``depth`` counts frames above the caller to the code that made or confined ``obj``;
        ``allow`` names other threads (or thread names) that may use it too.
        """
        existing = _CONFINED.get(id(obj))
        if existing is not None:
            if existing.allowed():
                return obj
            raise FaultlineError(
                f"{type(obj).__qualname__} object is already confined to thread "
                f"{existing.owner_name!r}; to move it, call faultline.transfer(obj, thread) "
                f"from the test"
            )
        cls = type(obj)
        stack = stack_at(sys._getframe(depth + 1))
        me = _raw.current_thread()
        state = Confinement(
            type_name=cls.__qualname__,
            owner_ident=me.ident,
            owner_name=me.name,
            owner_thread=me,
            origin=origin,
            stack=stack,
            on_violation=self._violated,
            allow=allow,
        )
        target: Any = obj
        original: type | None = cls
        try:
            # object.__setattr__: a class's own __setattr__ (a frozen dataclass) must not refuse.
            object.__setattr__(obj, "__class__", _guard_class(cls))
        except TypeError:
            target = ConfinedProxy(obj)
            original = None
        with self._mutex:
            _CONFINED[id(target)] = state
            self._objects[id(target)] = (self._reference(target), original)
        return target

    def _reference(self, target: object) -> Callable[[], object | None]:
        key = id(target)
        try:
            return weakref.ref(target, lambda _ref: self._forget(key))
        except TypeError:
            return lambda: target  # no weak references: kept until the test ends

    def _forget(self, key: int) -> None:
        with self._mutex:
            _CONFINED.pop(key, None)
            self._objects.pop(key, None)

    def _violated(self, error: ThreadAffinityError) -> None:
        self.violations.append(error)
        if self.on_violation is not None:
            self.on_violation(error)

    def transfer(self, obj: object, thread: threading.Thread) -> None:
        """Make ``thread`` the owner of confined ``obj``."""
        state = _CONFINED.get(id(obj))
        if state is None:
            raise FaultlineError(
                f"transfer(): this {type(obj).__qualname__} object is not confined; confine it "
                f"first with faultline.confine(obj), or list its type in the thread_affinity "
                f"scenario's types"
            )
        if not isinstance(thread, threading.Thread):
            raise FaultlineError(
                f"transfer(obj, thread): thread must be a threading.Thread (started or not), "
                f"got {thread!r} ({type(thread).__name__}); for the current thread pass "
                f"threading.current_thread()"
            )
        state.owner_thread = thread
        state.owner_ident = thread.ident
        state.owner_name = thread.name

    def confine_new_instances(self, cls: type, allow: Allowed = ()) -> None:
        """Confine every instance of ``cls`` made from now on to the thread that makes it."""
        original = cls.__dict__.get("__init__", _MISSING)
        base_init: Any = cls.__init__  # type: ignore[misc]

        def __init__(obj: Any, *args: Any, **kwargs: Any) -> None:
            base_init(obj, *args, **kwargs)
            if _CONFINED.get(id(obj)) is None:
                self.confine(obj, origin="created", depth=_init_depth(obj), allow=allow)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__doc__ = getattr(base_init, "__doc__", None)
        try:
            cls.__init__ = __init__  # type: ignore[misc]
        except TypeError:
            raise FaultlineError(
                f"thread_affinity: cannot wrap {cls.__module__}.{cls.__qualname__}.__init__ "
                f"(a built-in type); confine its instances one by one with faultline.confine(obj)"
            ) from None
        self._inits.append((cls, original))

    def close(self) -> None:
        """Unwrap constructors and give every confined object its class back."""
        for cls, original in reversed(self._inits):
            if original is _MISSING:
                del cls.__init__  # type: ignore[misc]
            else:
                cls.__init__ = original  # type: ignore[misc]
        self._inits.clear()
        with self._mutex:
            objects, self._objects = self._objects, {}
            for key in objects:
                _CONFINED.pop(key, None)
        for ref, original_class in objects.values():
            obj = ref()
            guarded = getattr(type(obj), "__faultline_guard__", False)
            if obj is not None and original_class is not None and guarded:
                object.__setattr__(obj, "__class__", original_class)


_MISSING = object()


def _init_depth(obj: object) -> int:
    # The object's maker is the first frame above the chain of its own __init__ calls (a
    # subclass's __init__ calling super().__init__() belongs to the construction).
    frame = sys._getframe(1)
    depth = 0
    while (
        frame.f_back is not None
        and frame.f_code.co_name == "__init__"
        and frame.f_locals.get("self", frame.f_locals.get("obj")) is obj
    ):
        frame = frame.f_back
        depth += 1
    return depth


def resolve_type(path: object) -> type:
    """``pkg.mod:Qual`` or ``pkg.mod.Qual`` (or a class) -> the class."""
    if isinstance(path, type):
        return path
    if not isinstance(path, str) or not path.strip():
        raise ScenarioError(
            f"thread_affinity: types must be import paths like 'pkg.mod:Class' or "
            f"'pkg.mod.Class', got {path!r}"
        )
    module_path, colon, qualname = path.partition(":")
    if colon:
        candidates = [(module_path, qualname)]
    else:
        parts = path.split(".")
        candidates = [
            (".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)
        ]
    problem = "no module"
    for module_name, qual in candidates:
        try:
            owner: Any = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for part in qual.split("."):
            owner = getattr(owner, part, _MISSING)
            if owner is _MISSING:
                problem = f"module {module_name!r} has no {qual!r}"
                break
        else:
            if isinstance(owner, type):
                return owner
            problem = f"{path!r} is a {type(owner).__name__}, not a class"
    raise ScenarioError(
        f"thread_affinity: cannot find the type {path!r} ({problem}); name it as "
        f"'pkg.mod:Class' or 'pkg.mod.Class'"
    )
