"""The managed primitives are drop-in: each carries the interface of the ``threading`` (and
``_thread``, ``queue``) type it stands in for, read from the running interpreter, not from a list
written by hand. Checked per Python version by running this file on each (tox, CI).

What a stand-in must have:
- every public method and property of the original, with every parameter the original accepts
  (``blocking``, ``timeout``, ``n``, ...);
- the context-manager protocol when the original has it;
- every private method of the original that the standard library itself calls
  (``_at_fork_reinit`` from ``concurrent.futures`` and ``logging``, ``_is_owned``,
  ``_release_save`` and ``_acquire_restore`` from ``Condition``, ...), found by reading the
  attribute names the bytecode of the stdlib modules that use these primitives refers to.
"""

from __future__ import annotations

import _thread
import importlib
import inspect
import queue
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_faultline.sched.primitives import (
    ManagedBarrier,
    ManagedBoundedSemaphore,
    ManagedCondition,
    ManagedEvent,
    ManagedLock,
    ManagedRLock,
    ManagedSemaphore,
)
from pytest_faultline.sched.queues import ManagedSimpleQueue

# The standard library that uses these primitives (and so may call their private methods).
# Not subprocess and socketserver: they use only the public methods (required anyway), and
# their own ``Popen._wait`` and ``os._exit`` would read as calls of Barrier's private helpers.
STDLIB_USERS = (
    "threading",
    "queue",
    "logging",
    "logging.handlers",
    "concurrent.futures",
    "concurrent.futures._base",
    "concurrent.futures.thread",
    "asyncio.base_events",
    "asyncio.events",
    "asyncio.futures",
    "asyncio.runners",
    "asyncio.threads",
    "importlib._bootstrap",
    "sched",
    "weakref",
    "multiprocessing.dummy",
)

# (what the stdlib makes, the stand-in the scheduler installs in its place)
PAIRS: tuple[tuple[str, type, type], ...] = (
    ("_thread.lock (threading.Lock())", type(_thread.allocate_lock()), ManagedLock),
    ("_thread.RLock (threading.RLock())", _thread.RLock, ManagedRLock),
    ("threading._PyRLock", threading._PyRLock, ManagedRLock),  # type: ignore[attr-defined]
    ("threading.Condition", threading.Condition, ManagedCondition),
    ("threading.Semaphore", threading.Semaphore, ManagedSemaphore),
    ("threading.BoundedSemaphore", threading.BoundedSemaphore, ManagedBoundedSemaphore),
    ("threading.Event", threading.Event, ManagedEvent),
    ("threading.Barrier", threading.Barrier, ManagedBarrier),
    ("queue.SimpleQueue", queue.SimpleQueue, ManagedSimpleQueue),
)

CONTEXT_MANAGER = ("__enter__", "__exit__")


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _module_codes(module: types.ModuleType) -> Iterator[tuple[type | None, types.CodeType]]:
    """The code of every function and method defined in ``module``, with the class it belongs
    to (None for a function)."""
    for value in vars(module).values():
        owner = value if isinstance(value, type) else None
        candidates = [value]
        if owner is not None:
            if owner.__module__ != module.__name__:
                continue
            candidates = list(vars(owner).values())
        for candidate in candidates:
            if isinstance(candidate, (staticmethod, classmethod)):
                candidate = candidate.__func__
            elif isinstance(candidate, property):
                candidate = candidate.fget
            code = getattr(candidate, "__code__", None)
            if isinstance(code, types.CodeType):
                for inner in _code_objects(code):
                    yield owner, inner


UsedNames = list[tuple[type | None, frozenset[str]]]


def stdlib_code_names() -> UsedNames:
    """For each function and method of :data:`STDLIB_USERS`: its class and the attribute names
    its bytecode refers to."""
    found: UsedNames = []
    for module_name in STDLIB_USERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # not on this platform or version
            continue
        found += [(owner, frozenset(code.co_names)) for owner, code in _module_codes(module)]
    return found


def used_on(original: type, codes: UsedNames) -> frozenset[str]:
    """The names the stdlib refers to outside ``original``'s own methods (a private method
    only the class itself calls is its business, not the interface)."""
    own = set(original.__mro__)
    return frozenset(name for owner, names in codes if owner not in own for name in names)


def _own_names(cls: type) -> set[str]:
    """Names defined by ``cls`` and its bases, ``object`` left out."""
    return {name for klass in cls.__mro__ if klass is not object for name in vars(klass)}


def required(original: type, codes: UsedNames) -> set[str]:
    """What a stand-in for ``original`` must carry."""
    used_by_stdlib = used_on(original, codes)
    names = set()
    for name in _own_names(original):
        value = inspect.getattr_static(original, name)
        is_method = callable(value) or isinstance(value, (property, classmethod, staticmethod))
        if not is_method and not inspect.ismethoddescriptor(value):
            continue  # data: the original's own state
        if name in CONTEXT_MANAGER:
            names.add(name)
        elif name.startswith("__"):
            continue  # object protocol (repr, init, class_getitem, ...)
        elif not name.startswith("_") or name in used_by_stdlib:
            names.add(name)
    return names


def _accepts(func: Any) -> tuple[int, set[str], bool, bool] | None:
    """(positional arguments, keyword names, takes *args, takes **kwargs) of ``func`` without
    ``self``; None when Python cannot tell (a C method without a text signature)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = [p for name, p in signature.parameters.items() if name != "self"]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_args = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    return len(positional), keywords, var_args, var_kwargs


def problems(original: type, stand_in: type, codes: UsedNames) -> list[str]:
    """What ``stand_in`` lacks of ``original``'s interface, one line each."""
    found = []
    for name in sorted(required(original, codes)):
        if not hasattr(stand_in, name):
            found.append(f"{stand_in.__name__} has no {name!r}")
            continue
        theirs = _accepts(getattr(original, name))
        ours = _accepts(getattr(stand_in, name))
        if theirs is None or ours is None:
            continue
        if theirs[0] > ours[0] and not ours[2]:
            found.append(
                f"{stand_in.__name__}.{name}() takes {ours[0]} positional arguments, "
                f"the original {theirs[0]}"
            )
        if name.startswith("_") or ours[3]:
            continue  # private and dunder methods are called positionally
        for keyword in sorted(theirs[1] - ours[1]):
            found.append(f"{stand_in.__name__}.{name}() does not accept {keyword!r}")
    return found


@pytest.fixture(scope="module")
def codes() -> UsedNames:
    return stdlib_code_names()


@pytest.mark.parametrize(("what", "original", "stand_in"), PAIRS, ids=[p[0] for p in PAIRS])
def test_a_stand_in_carries_the_interface_of_the_original(
    what: str, original: type, stand_in: type, codes: UsedNames
) -> None:
    assert problems(original, stand_in, codes) == [], (
        f"the stand-in for {what} on Python {sys.version.split()[0]}"
    )


def test_the_stdlib_private_methods_are_found(codes: UsedNames) -> None:
    # The check above reads what the stdlib calls; these are the calls it is there for.
    lock_needs = required(type(_thread.allocate_lock()), codes)
    assert {"_at_fork_reinit", "acquire", "release", "locked"} <= lock_needs
    assert {"__enter__", "__exit__"} <= lock_needs
    rlock_needs = required(threading._PyRLock, codes)  # type: ignore[attr-defined]
    assert {"_is_owned", "_release_save", "_acquire_restore", "_at_fork_reinit"} <= rlock_needs
    assert "_at_fork_reinit" in required(threading.Condition, codes)
    # ... and not every private name: helpers only the class itself calls stay out.
    assert "_break" not in required(threading.Barrier, codes)


def test_a_missing_method_or_parameter_is_reported(codes: UsedNames) -> None:
    """The check has teeth: a stand-in without ``_at_fork_reinit`` and with an ``acquire``
    that takes no timeout is caught."""

    class Incomplete:
        def acquire(self, blocking: bool = True) -> bool:
            return True

        def release(self) -> None:
            pass

        def locked(self) -> bool:
            return False

        def __enter__(self) -> bool:
            return True

        def __exit__(self, *exc: object) -> None:
            pass

    found = problems(threading.Condition, Incomplete, codes)
    assert "Incomplete has no '_at_fork_reinit'" in found
    assert "Incomplete has no 'wait'" in found
    found = problems(threading.Semaphore, Incomplete, codes)
    assert "Incomplete.acquire() does not accept 'timeout'" in found
